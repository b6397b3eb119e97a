"""The registry: every certificate by id, revocations and status lists (:mod:`.agents`,
:mod:`.status`), and the views that serve, verify and revoke them (:mod:`.views`)."""
