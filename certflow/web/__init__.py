"""What every web view of a worker shares: tokens, security headers, JSON errors, and
the operational views (health, readiness, stats, metrics, a learner's decisions).
Each flow's own views live in its package (e.g. :mod:`certflow.registry.views`)."""
