"""Faust web views of a worker. Importing this package registers them."""

from certflow.web import views

__all__ = ["views"]
