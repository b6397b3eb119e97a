"""Faust agents, one module per flow. Importing this package registers them."""

from certflow.agents import generate, issue, reference, registry

__all__ = ["generate", "issue", "reference", "registry"]
