"""The long-lived objects a worker's agents and views share, started and stopped with its app."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property

import mode

from certflow.accounting import Accounting
from certflow.credentials.keys import KeyRing
from certflow.faust_fixes.app import restore_root_log_level
from certflow.generate.factory import CertificateFactory, template_cache
from certflow.logs import LOG_LEVELS
from certflow.metrics import WorkerMetrics
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.render.images import ImageLimits, image_data_uri
from certflow.render.pool import RenderPool
from certflow.render.svg import SvgTemplate
from certflow.render.template_cache import TemplateCache
from certflow.settings import Settings

#: Seconds an image (signature, logo) whose fetch failed is not fetched again.
IMAGE_FAILURE_SECONDS = 30.0


class CertflowServices(mode.Service):
    """Accounting, fetching, caches, rendering and the signing keys of one worker.

    One template cache per worker, so a template is fetched once per worker however
    many partitions and events use it; one HTTP session, closed on shutdown.
    Nothing here touches the network, the disk or the keys until the service starts
    or a certificate is made.
    """

    def __init__(self, settings: Settings, *, app_logger: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # mode's **kwargs are untyped
        self.settings = settings
        #: The name of the app's logger, whose flight-recorder replays are kept (None: no app).
        self.app_logger = app_logger
        self.accounting = Accounting()
        policy = FetchPolicy.from_settings(settings)
        self.fetcher = SafeFetcher(policy)
        self.image_limits = ImageLimits.from_settings(settings)
        self.templates: TemplateCache[SvgTemplate] = template_cache(settings, self.fetcher)
        # Signature and logo images: the same guards, their own host allow-list.
        self.image_fetcher = SafeFetcher(replace(policy, allowed_hosts=tuple(settings.image_allowed_hosts)))
        self.images: TemplateCache[str] = TemplateCache(
            self.image_fetcher,
            lambda body, url: image_data_uri(body, url, self.image_limits),
            template_root=settings.template_root,
            maxsize=settings.render_cache_size or 1,
            ttl_seconds=settings.template_cache_ttl_seconds,
            max_bytes=settings.fetch_max_bytes,
            # An image host that failed is left alone for a while: the image is left
            # off the drawing meanwhile, as it would be after another failed fetch.
            failure_ttl_seconds=IMAGE_FAILURE_SECONDS,
        )
        self.renderer = RenderPool(cache_size=settings.render_cache_size, image_limits=self.image_limits)
        self.metrics = WorkerMetrics(
            self.accounting, lambda: {"templates": self.templates.stats, "images": self.images.stats}
        )

    @cached_property
    def keys(self) -> KeyRing:
        """The deployment's signing keys (``SigningKeysMissing`` if none are configured).

        Read when first needed or when the worker starts, never when the app is
        built: tools and tests build apps without being a worker. ``certflow
        worker`` reads them before anything else, so a worker without keys stops
        before it touches the broker.
        """
        return KeyRing.from_settings(self.settings)

    @cached_property
    def certificates(self) -> CertificateFactory:
        return CertificateFactory(self.templates, self.settings.base_path, self.keys, self.settings.partitions)

    async def on_start(self) -> None:
        self.keys  # noqa: B018 - a worker without signing keys must not run (faust -A too)
        restore_root_log_level(LOG_LEVELS[self.settings.log_level], self.app_logger)

    async def on_stop(self) -> None:
        await self.fetcher.close()
        await self.image_fetcher.close()
        self.renderer.close()
