"""Faust web views of a worker. Importing this package registers them."""

from certflow.web import certificates, views

__all__ = ["certificates", "views"]
