"""The issue flow: who gets a certificate. Sunbird's issue request (:mod:`.models`),
the criteria registry (:mod:`.criteria`), the decision and the generate event it
makes (:mod:`.rules`), and the agents that run them (:mod:`.agents`)."""
