"""Strimzi resources of a deployment: a ``KafkaTopic`` for every topic its workers use,
and a ``KafkaUser`` with the ACLs a worker needs, generated (``certflow topics
--strimzi``) rather than written by hand, from the rules certflow itself creates
topics by, so ``deploy/kubernetes/`` cannot drift from the code.

The topics are certflow's own (:class:`~certflow.topics.TopicNames`, compacted as
:meth:`~certflow.topics.TopicNames.compacted` says, as ``certflow topics`` creates
them) and the ones Faust creates for the app (each table's changelog, the leader
election topic), read from the app :func:`~certflow.app.create_app` builds, with the
configuration certflow's transport would give them. Replication follows
:func:`~certflow.kafka.topic_durability` on a cluster of three brokers or more (a
production cluster), unless the settings say otherwise.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from certflow.kafka import topic_config, topic_durability

if TYPE_CHECKING:
    from certflow.settings import Settings

STRIMZI_API = "kafka.strimzi.io/v1beta2"
#: Brokers of the cluster the resources are for: replication 3, 2 in sync by default.
PRODUCTION_BROKERS = 3
#: Labels of every generated resource (Strimzi's label picks the Kafka cluster).
APP_LABEL = {"app.kubernetes.io/name": "certflow"}

Authentication = Literal["scram-sha-512", "tls"]


@dataclass(frozen=True)
class TopicSpec:
    """One topic as the deployment needs it; ``origin`` says who uses it, for the YAML's readers."""

    name: str
    partitions: int
    replicas: int
    config: dict[str, str]
    origin: str


@dataclass(frozen=True)
class AclRule:
    """One Strimzi ``simple`` authorization rule: ``operations`` allowed on a resource
    (``topic``, ``group``, ``transactionalId``, ``cluster``) named literally or by prefix."""

    resource_type: str
    name: str
    operations: tuple[str, ...]
    pattern_type: Literal["literal", "prefix"] = "literal"


def topic_specs(settings: Settings, *, brokers: int = PRODUCTION_BROKERS) -> list[TopicSpec]:
    """Every topic a deployment with ``settings`` uses, certflow's own first."""
    from certflow.app import create_app

    replicas, in_sync = topic_durability(brokers, settings.replication_factor, settings.min_insync_replicas)
    topics = settings.topics
    own = [
        TopicSpec(
            name, settings.partitions, replicas,
            topic_config(name, min_insync_replicas=in_sync, compacted=topics.compacted()),
            f"certflow: TopicNames.{attribute}",
        )
        for attribute, name in vars(topics).items()
    ]
    app = create_app(settings)
    _check_agents_read_known_topics(app, {spec.name for spec in own})
    faust_topics = [(f"Faust: changelog of table {table.name}", table.changelog_topic) for table in app.tables.values()]
    if not app.conf.topic_disable_leader:
        # Faust declares it when the worker starts (faust/assignor/leader_assignor.py).
        assignor = app._leader_assignor  # noqa: SLF001 - Faust names and shapes the topic there, nowhere public
        leader = assignor._leader_topic  # type: ignore[attr-defined]  # noqa: SLF001 - as above (not in its type)
        faust_topics.append(("Faust: leader election", leader))
    internal = []
    for origin, topic in faust_topics:
        # As certflow's transport creates it: Faust's config for the topic's flags,
        # min.insync.replicas, then the topic's own (certflow.faust_fixes.transport).
        config = {
            **app.transport._topic_config(topic.retention, topic.compacting, topic.deleting),  # type: ignore[attr-defined]  # noqa: SLF001 - Faust's rule for its topics' config
            "min.insync.replicas": str(in_sync),
            **dict(topic.config or {}),
        }
        partitions = topic.partitions or app.conf.topic_partitions
        internal.append(TopicSpec(
            topic.get_topic_name(), partitions, replicas, {key: str(value) for key, value in config.items()}, origin,
        ))
    return own + internal


def _check_agents_read_known_topics(app: object, known: set[str]) -> None:
    """Refuse to generate resources that would leave out a topic an agent reads."""
    unknown = sorted(
        f"{agent.name} reads {topic}"
        for agent in app.agents.values()  # type: ignore[attr-defined]  # a Faust app
        for topic in getattr(agent.channel, "topics", ())
        if topic not in known
    )
    if unknown:
        raise ValueError(f"agents read topics TopicNames does not list: {', '.join(unknown)}")


def worker_acls(settings: Settings, topics: Sequence[TopicSpec]) -> list[AclRule]:
    """What a worker's Kafka user must be allowed: read and write every topic of the
    deployment, by name; Describe (``certflow topics`` and Faust check that they
    exist) and Create, because Faust asks to create its internal topics on every
    start, and Kafka checks the right to create before it answers that the topic
    exists (so a missing KafkaTopic gets created, unmanaged, rather than stop the
    worker); its consumer group (the app id); and under exactly-once the
    transactional ids of Faust's producers (``<app id>-…``)."""
    rules = [AclRule("topic", spec.name, ("Create", "Describe", "Read", "Write")) for spec in topics]
    rules.append(AclRule("group", settings.app_id, ("Describe", "Read")))
    if settings.processing_guarantee == "exactly_once":
        rules.append(AclRule("transactionalId", f"{settings.app_id}-", ("Describe", "Write"), "prefix"))
    return rules


# -- resources ---------------------------------------------------------------------


def resource_name(topic: str) -> str:
    """A Kubernetes name for ``topic``: itself when it is one, else lower-cased, other
    characters as '-', and a hash of the real name so two topics never share one
    (``spec.topicName`` keeps the real name either way)."""
    if re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", topic):
        return topic
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", topic.lower()).strip(".-")[:200]
    return f"{cleaned}-{hashlib.sha1(topic.encode()).hexdigest()[:8]}".lstrip("-")


def kafka_topics(specs: Iterable[TopicSpec], cluster: str) -> list[dict[str, object]]:
    """A Strimzi ``KafkaTopic`` for each spec, for the Kafka cluster named ``cluster``."""
    return [
        {
            "apiVersion": STRIMZI_API,
            "kind": "KafkaTopic",
            "metadata": {
                "name": resource_name(spec.name),
                "labels": {"strimzi.io/cluster": cluster, **APP_LABEL},
                "annotations": {"certflow/used-by": spec.origin},
            },
            "spec": {
                "topicName": spec.name,
                "partitions": spec.partitions,
                "replicas": spec.replicas,
                "config": dict(spec.config),
            },
        }
        for spec in specs
    ]


def kafka_user(
    rules: Iterable[AclRule], cluster: str, user: str, authentication: Authentication,
) -> dict[str, object]:
    """A Strimzi ``KafkaUser`` allowed ``rules``: its Secret (named ``user``) holds the
    SCRAM password (``password``) or the mutual-TLS certificate and key
    (``user.crt``, ``user.key``) the workers' settings point at."""
    acls = []
    for rule in rules:
        resource: dict[str, object] = {"type": rule.resource_type}
        if rule.resource_type != "cluster":
            resource.update(name=rule.name, patternType=rule.pattern_type)
        acls.append({"resource": resource, "operations": list(rule.operations)})
    return {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaUser",
        "metadata": {"name": user, "labels": {"strimzi.io/cluster": cluster, **APP_LABEL}},
        "spec": {
            "authentication": {"type": authentication},
            "authorization": {"type": "simple", "acls": acls},
        },
    }


#: The settings that shape the generated resources, as the header's command repeats them.
SHAPING_SETTINGS = (
    "app_id", "topic_prefix", "partitions", "replication_factor", "min_insync_replicas", "processing_guarantee",
)


def generated_header(settings: Settings, command: str) -> str:
    """The comment that opens a generated file: not to be edited, and how to make it again."""
    assignments = []
    for name in SHAPING_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            assignments.append(f"CERTFLOW_{name.upper()}={value}")
    return (
        "# Generated by certflow; do not edit. Regenerate with the deployment's settings:\n"
        f"#   {' '.join(assignments)} \\\n"
        f"#   {command}\n"
    )


# -- YAML --------------------------------------------------------------------------

#: Scalars YAML would read as something other than a string when left unquoted.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_NOT_STRINGS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _NOT_STRINGS:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a double-quoted YAML scalar


def _yaml_lines(value: object, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _is_block(item):
                lines.append(f"{pad}{_scalar(key)}:")
                lines += _yaml_lines(item, indent + 2)
            else:
                lines.append(f"{pad}{_scalar(key)}: {_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            block = _yaml_lines(item, indent + 2)
            lines.append(f"{pad}- {block[0].lstrip()}")
            lines += block[1:]
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines


def _is_block(value: object) -> bool:
    """A non-empty mapping, or a list of mappings: written as a block, the rest inline."""
    if isinstance(value, Mapping):
        return bool(value)
    return isinstance(value, list) and bool(value) and isinstance(value[0], Mapping)


def _inline(value: object) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_scalar(k)}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    return _scalar(value)


def to_yaml(documents: Iterable[Mapping[str, object]], header: str = "") -> str:
    """``documents`` as one YAML stream (block style, flow style for lists of scalars
    and empty collections), opened by ``header``: enough YAML for Kubernetes
    resources, with no YAML library needed."""
    return header + "".join("---\n" + "\n".join(_yaml_lines(document, 0)) + "\n" for document in documents)
