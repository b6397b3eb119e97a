"""The base of certflow's views: Faust's ``View``, whose ``app`` is a certflow app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faust.web import View

if TYPE_CHECKING:
    from certflow.app import CertflowApp


class CertflowView(View):
    """A view of a certflow worker: reaches its settings, services and flows through
    ``self.app`` (the app it was registered on), never through module globals."""

    app: CertflowApp
