"""The Faust application: one per worker process, configured from :class:`Settings`.

Following Faust's "Projects and Directory Layout" guide, ``app`` is a module-level
object that agent and view modules import and decorate; ``create_app`` is the
factory that makes it, so tests and tools can build one from explicit settings.
``faust -A certflow.app worker`` and ``certflow worker`` run the same app.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import faust
import mode
from faust.types import TransportT

from certflow.accounting import Accounting
from certflow.credentials.keys import KeyRing
from certflow.issuing import CertificateFactory
from certflow.metrics import WorkerMetrics
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.render.images import ImageLimits, check_template_images, image_data_uri
from certflow.render.pool import RenderPool
from certflow.render.svg import SvgTemplate
from certflow.render.template_cache import TemplateCache
from certflow.settings import Settings
from certflow.transport import Transport


class CertflowServices(mode.Service):
    """The long-lived objects every agent shares, started and stopped with the app.

    One template cache per worker, so a template is fetched once per worker however
    many partitions and events use it; one HTTP session, closed on shutdown.
    """

    def __init__(self, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.accounting = Accounting()
        policy = FetchPolicy.from_settings(settings)
        self.fetcher = SafeFetcher(policy)
        self.image_limits = ImageLimits.from_settings(settings)
        self.templates: TemplateCache[SvgTemplate] = TemplateCache.from_settings(
            settings, self.fetcher, lambda source, url: parse_template(source, url, self.image_limits)
        )
        # Signature and logo images: the same guards, their own host allow-list.
        self.image_fetcher = SafeFetcher(
            replace(policy, allowed_hosts=tuple(settings.image_allowed_hosts))
        )
        self.images: TemplateCache[str] = TemplateCache(
            self.image_fetcher,
            lambda body, url: image_data_uri(body, url, self.image_limits),
            template_root=settings.template_root,
            maxsize=settings.render_cache_size or 1,
            ttl_seconds=settings.template_cache_ttl_seconds,
            max_bytes=settings.fetch_max_bytes,
        )
        self.renderer = RenderPool(
            cache_size=settings.render_cache_size, image_limits=self.image_limits
        )
        self.metrics = WorkerMetrics(
            self.accounting, lambda: {"templates": self.templates.stats, "images": self.images.stats}
        )

    @cached_property
    def keys(self) -> KeyRing:
        """The deployment's signing keys (``SigningKeysMissing`` if none are configured).

        Read when first needed or when the worker starts, not when this module is
        imported: tools and tests import the app without being a worker. ``certflow
        worker`` reads them before anything else, so a worker without keys stops
        before it touches the broker.
        """
        return KeyRing.from_settings(self.settings)

    @cached_property
    def certificates(self) -> CertificateFactory:
        return CertificateFactory(self.templates, self.settings.base_path, self.keys)

    async def on_start(self) -> None:
        self.keys  # noqa: B018 - a worker without signing keys must not run (faust -A too)
        # Faust's worker sets the root logger to DEBUG when the level is WARN or
        # above, so that its start-up spinner sees every record, and leaves it so:
        # every debug line of aiokafka and Faust is then built and thrown away (a
        # fifth of an idle worker's CPU, measured with py-spy). Back to the setting.
        logging.getLogger().setLevel(_LEVELS[self.settings.log_level])

    async def on_stop(self) -> None:
        await self.fetcher.close()
        await self.image_fetcher.close()
        self.renderer.close()


def parse_template(source: bytes, url: str, image_limits: ImageLimits) -> SvgTemplate:
    """A fetched template, sanitised, whose embedded images are within the limits."""
    template = SvgTemplate.parse(source, url=url)
    check_template_images(source, url, image_limits)
    return template


_LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


def logging_config(settings: Settings) -> dict[str, Any] | None:
    """JSON lines for log pipelines (``CERTFLOW_LOG_FORMAT=json``), else Faust's own."""
    if settings.log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"level": _LEVELS[settings.log_level], "handlers": ["stdout"]},
    }


class CertflowApp(faust.App):
    """Faust's app on certflow's transport (:mod:`certflow.transport`)."""

    #: Replication of the topics Faust creates: configured, or (None) from the cluster's size.
    replication_factor: int | None = None
    min_insync_replicas: int | None = None

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        # Faust creates its data directory with mkdir() without parents: in a fresh
        # working directory the default, .certflow/worker, died with
        # FileNotFoundError('.certflow/worker'). The whole path is created first.
        Path(self.conf.datadir).mkdir(parents=True, exist_ok=True)
        await super().on_first_start()


def create_app(settings: Settings) -> CertflowApp:
    """A Faust app wired to ``settings``; agents attach when their modules import."""
    app = CertflowApp(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        table_standby_replicas=settings.standby_replicas,
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        # A placeholder: the transport gives every topic Faust creates the
        # replication that fits the cluster (see certflow.transport.Transport).
        topic_replication_factor=settings.replication_factor or 1,
        # Source topics are created by `certflow topics` with their partition
        # counts; an auto-created topic would get the broker's default instead.
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        producer_max_batch_size=settings.producer_max_batch_size,
        producer_linger=settings.producer_linger_seconds,
        recovery_consistency_check=settings.recovery_consistency_check,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        # Faust's generic table and router pages would serve any learner's stored
        # data to anyone who can reach the port: certflow's own views only.
        web_tables_enabled=False,
        web_router_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=("certflow.agents", "certflow.web"),
        origin="certflow",
        loghandlers=[],
        logging_config=logging_config(settings),
    )
    app.replication_factor = settings.replication_factor
    app.min_insync_replicas = settings.min_insync_replicas
    return app


settings = Settings()
app = create_app(settings)
services = CertflowServices(settings)
app.add_dependency(services)
