"""The Faust application: one per worker process, configured from :class:`Settings`.

Following Faust's "Projects and Directory Layout" guide, ``app`` is a module-level
object that agent and view modules import and decorate; ``create_app`` is the
factory that makes it, so tests and tools can build one from explicit settings.
``faust -A certflow.app worker`` and ``certflow worker`` run the same app.
"""

from __future__ import annotations

import faust
import mode

from certflow.accounting import Accounting
from certflow.issuing import CertificateFactory
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.render.svg import SvgTemplate
from certflow.render.template_cache import TemplateCache
from certflow.settings import Settings


class CertflowServices(mode.Service):
    """The long-lived objects every agent shares, started and stopped with the app.

    One template cache per worker, so a template is fetched once per worker however
    many partitions and events use it; one HTTP session, closed on shutdown.
    """

    def __init__(self, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.accounting = Accounting()
        self.fetcher = SafeFetcher(FetchPolicy.from_settings(settings))
        self.templates: TemplateCache[SvgTemplate] = TemplateCache.from_settings(
            settings, self.fetcher, _parse_template
        )
        self.certificates = CertificateFactory(self.templates, settings.base_path)

    async def on_stop(self) -> None:
        await self.fetcher.close()


def _parse_template(source: bytes, url: str) -> SvgTemplate:
    return SvgTemplate.parse(source, url=url)


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired to ``settings``; agents attach when their modules import."""
    return faust.App(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Source topics are created by `certflow topics` with their partition
        # counts; an auto-created topic would get the broker's default instead.
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=("certflow.agents", "certflow.web"),
        origin="certflow",
        loghandlers=[],
    )


settings = Settings()
app = create_app(settings)
services = CertflowServices(settings)
app.add_dependency(services)
