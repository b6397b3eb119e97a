"""Faust agents, one module per flow. Importing this package registers them."""

from certflow.agents import generate

__all__ = ["generate"]
