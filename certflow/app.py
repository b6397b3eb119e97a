"""The Faust application: built by :func:`create_app` from explicit :class:`Settings`.

Nothing happens when this module is imported. ``create_app`` builds the app and
its services and registers every flow's agents, tables and views through their
``register`` functions, in the order they depend on each other:

* ``reference`` (ingestion, and the learner state every other flow reads and writes),
* ``notify`` (the notifier: email to learners, published by the flows below),
* ``registry`` (certificates by id, revocations, status lists, and their views),
* ``issue`` (who gets a certificate), then ``generate`` (making it),
* the shared web views, the VC-API (``vcapi``: issue, verify, wallet exchanges),
  and the watchdog.

``certflow worker`` and ``faust -A certflow.worker worker`` run such an app.
"""

from __future__ import annotations

from dataclasses import dataclass

from certflow.events.settle import Settler
from certflow.faust_fixes import liveness
from certflow.faust_fixes.app import FixedApp
from certflow.faust_fixes.tables import Table as FixedTable
from certflow.faust_fixes.web import FAUST_PAGES_OFF
from certflow.generate import agents as generate_agents
from certflow.generate.agents import GenerateFlow
from certflow.issue import agents as issue_agents
from certflow.issue.agents import IssueFlow
from certflow.logs import logging_config
from certflow.notify import agents as notify_agents
from certflow.notify import views as notify_views
from certflow.notify.agents import Notifier
from certflow.reference import agents as reference_agents
from certflow.reference.agents import ReferenceIngestion
from certflow.reference.state import LearnerState
from certflow.registry import agents as registry_agents
from certflow.registry import views as registry_views
from certflow.registry.agents import Registry
from certflow.services import CertflowServices
from certflow.settings import Settings
from certflow.vcapi import exchanges as vcapi_exchanges
from certflow.vcapi import views as vcapi_views
from certflow.web import views as web_views


@dataclass
class Flows:
    """What the flows share once registered (views and tests reach them through the app)."""

    settle: Settler
    reference: ReferenceIngestion
    state: LearnerState
    registry: Registry
    issue: IssueFlow
    generate: GenerateFlow
    notifier: Notifier


class CertflowApp(FixedApp):
    """A certflow worker's Faust app: its settings, services and flows."""

    settings: Settings
    services: CertflowServices
    flows: Flows


def create_app(settings: Settings) -> CertflowApp:
    """A Faust app wired to ``settings``, with every agent, table and view registered."""
    kafka = settings.kafka
    app = CertflowApp(
        settings.app_id,
        broker=kafka.url,
        # TLS and SASL of Faust's consumer, producer and topic creation: the same
        # settings as every other client of certflow's (certflow.kafka_client).
        broker_credentials=kafka.faust_credentials(),
        store=settings.store,
        table_standby_replicas=settings.standby_replicas,
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        # A placeholder: the transport gives every topic Faust creates the
        # replication that fits the cluster (see certflow.faust_fixes.transport).
        topic_replication_factor=settings.replication_factor or 1,
        # Source topics are created by `certflow topics` with their partition
        # counts; an auto-created topic would get the broker's default instead.
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=settings.consumer_max_poll_records,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        broker_rebalance_timeout=settings.rebalance_timeout_seconds,
        producer_max_batch_size=settings.producer_max_batch_size,
        producer_linger=settings.producer_linger_seconds,
        producer_compression_type=None if settings.producer_compression == "none" else settings.producer_compression,
        recovery_consistency_check=settings.recovery_consistency_check,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        # Faust's table, writing while a new changelog's partitions are not yet in
        # the metadata (certflow.faust_fixes.tables).
        Table=FixedTable,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        origin="certflow",
        loghandlers=[],
        logging_config=logging_config(settings),
        **FAUST_PAGES_OFF,
    )
    app.settings = settings
    app.replication_factor = settings.replication_factor
    app.min_insync_replicas = settings.min_insync_replicas
    services = app.services = CertflowServices(settings, app_logger=app.log.logger.name)
    app.add_dependency(services)
    settle = Settler(app, services.accounting, services.metrics)
    reference = reference_agents.register(app, services, settle)
    state = reference.state
    notifier = notify_agents.register(app, services, settle, state)
    records = registry_agents.register(app, services, settle, notifier)
    issue = issue_agents.register(app, services, settle, state)
    generate = generate_agents.register(app, services, settle, state, records, notifier)
    app.flows = Flows(settle, reference, state, records, issue, generate, notifier)
    web_views.register(app)
    registry_views.register(app)
    notify_views.register(app)
    vcapi_views.register(app)
    vcapi_exchanges.register(app)
    liveness.register(app)
    return app
