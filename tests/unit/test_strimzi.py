"""The Strimzi resources: every topic a deployment uses, as certflow and Faust create
them, the worker's ACLs, and the checked-in YAML of deploy/kubernetes/ equal to what
the generator prints for the settings in its ConfigMap (so neither can drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from certflow.cli import cli
from certflow.settings import Settings
from certflow.strimzi import (
    SHAPING_SETTINGS,
    AclRule,
    kafka_topics,
    kafka_user,
    resource_name,
    to_yaml,
    topic_specs,
    worker_acls,
)

DEPLOY = Path(__file__).parents[2] / "deploy" / "kubernetes"
CLUSTER = "certflow-kafka"
USER = "certflow-worker"


@pytest.fixture(autouse=True)
def no_certflow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the settings a test names shape the resources."""
    import os

    for name in list(os.environ):
        if name.startswith("CERTFLOW_"):
            monkeypatch.delenv(name)


def configmap() -> dict[str, str]:
    """The settings of configmap.yaml (its data is flat ``KEY: "value"`` lines)."""
    text = (DEPLOY / "configmap.yaml").read_text(encoding="utf-8")
    found = dict(re.findall(r'^  (CERTFLOW_[A-Z_]+): "([^"]*)"$', text, flags=re.MULTILINE))
    assert {"CERTFLOW_PARTITIONS", "CERTFLOW_TOPIC_PREFIX", "CERTFLOW_BROKER"} <= found.keys()
    return found


def configmap_settings() -> dict[str, str]:
    """The settings of configmap.yaml that shape the topics (one left out has its default)."""
    shaping = {f"CERTFLOW_{name.upper()}" for name in SHAPING_SETTINGS}
    return {name: value for name, value in configmap().items() if name in shaping}


def generate(*arguments: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(cli, ["topics", "--strimzi", CLUSTER, *arguments], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_topics_yaml_is_what_the_generator_prints_for_the_configmaps_settings() -> None:
    expected = generate(env=configmap_settings())
    checked_in = (DEPLOY / "topics.yaml").read_text(encoding="utf-8")
    assert checked_in == expected, (
        "deploy/kubernetes/topics.yaml is stale: regenerate it with the command in its first lines"
    )


def test_kafkauser_yaml_is_what_the_generator_prints_for_the_configmaps_settings() -> None:
    expected = generate("--kafka-user", USER, env=configmap_settings())
    assert (DEPLOY / "kafkauser.yaml").read_text(encoding="utf-8") == expected


def test_the_configmap_logs_in_as_the_generated_user_with_scram_over_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in configmap().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CERTFLOW_KAFKA_SASL_PASSWORD", "from-the-secret")  # statefulset.yaml
    kafka = Settings().kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username) == ("SASL_SSL", "SCRAM-SHA-512", USER)
    assert kafka.bootstrap_servers == [f"{CLUSTER}-kafka-bootstrap:9093"]
    assert str(kafka.ssl_cafile) == "/etc/certflow/kafka-ca/ca.crt"
    statefulset = (DEPLOY / "statefulset.yaml").read_text(encoding="utf-8")
    assert f"secretKeyRef: {{name: {USER}, key: password}}" in statefulset
    assert f"secretName: {CLUSTER}-cluster-ca-cert" in statefulset
    assert "{name: kafka-ca, mountPath: /etc/certflow/kafka-ca, readOnly: true}" in statefulset
    kustomization = (DEPLOY / "kustomization.yaml").read_text(encoding="utf-8")
    assert "  - topics.yaml\n" in kustomization and "  - kafkauser.yaml\n" in kustomization


def test_every_topic_certflow_and_faust_use_is_there_with_its_partitions_and_compaction() -> None:
    settings = Settings(topic_prefix="env", partitions=12, app_id="certs")
    specs = {spec.name: spec for spec in topic_specs(settings)}
    tables = ["enrolments", "scores", "learners", "issued", "decisions", "notify_contacts",
              "certificates", "status_lists", "access_codes"]
    assert set(specs) == {
        *settings.topics.all(), *(f"certs-{table}-changelog" for table in tables), "certs-__assignor-__leader",
    }
    compacted = {name for name, spec in specs.items() if spec.config.get("cleanup.policy") == "compact"}
    assert compacted == {"env.certificate.issued", *(f"certs-{table}-changelog" for table in tables)}
    assert {spec.replicas for spec in specs.values()} == {3}
    assert {spec.config["min.insync.replicas"] for spec in specs.values()} == {"2"}
    assert specs.pop("certs-__assignor-__leader").partitions == 1
    assert {spec.partitions for spec in specs.values()} == {12}


def test_replication_follows_the_settings_as_certflow_topics_does() -> None:
    specs = topic_specs(Settings(replication_factor=5, min_insync_replicas=3))
    assert {(spec.replicas, spec.config["min.insync.replicas"]) for spec in specs} == {(5, "3")}


def test_the_partitions_option_overrides_the_setting() -> None:
    output = generate("--partitions", "6", env={"CERTFLOW_PARTITIONS": "24"})
    counts = re.findall(r"^  partitions: (\d+)$", output, flags=re.MULTILINE)
    assert set(counts) == {"6", "1"} and counts.count("1") == 1  # the leader topic has one
    assert "CERTFLOW_PARTITIONS=6 " in output.splitlines()[1]


def test_a_kafka_user_without_strimzi_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["topics", "--kafka-user", USER])
    assert result.exit_code == 2 and "--kafka-user needs --strimzi" in result.output


def test_the_worker_may_use_its_topics_its_group_and_under_exactly_once_its_transactions() -> None:
    settings = Settings(app_id="certs")
    specs = topic_specs(settings)
    rules = worker_acls(settings, specs)
    assert [rule for rule in rules if rule.resource_type == "topic"] == [
        AclRule("topic", spec.name, ("Create", "Describe", "Read", "Write")) for spec in specs
    ]
    assert [rule for rule in rules if rule.resource_type != "topic"] == [AclRule("group", "certs", ("Describe", "Read"))]
    exactly_once = Settings(app_id="certs", processing_guarantee="exactly_once")
    assert worker_acls(exactly_once, specs)[-1] == AclRule("transactionalId", "certs-", ("Describe", "Write"), "prefix")


def test_resource_names_are_kubernetes_names_and_never_shared() -> None:
    topics = ["certificate.issued", "certflow-notify_contacts-changelog", "certflow-notify-contacts-changelog",
              "certflow-__assignor-__leader", "Upper.Case", "_x"]
    names = [resource_name(topic) for topic in topics]
    assert names[0] == "certificate.issued"
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", name), name


def test_resources_render_as_yaml_with_quoted_strings_where_yaml_would_misread_them() -> None:
    [issued] = [spec for spec in topic_specs(Settings(partitions=2)) if spec.name == "certificate.issued"]
    [topic] = kafka_topics([issued], "c")
    assert topic["spec"] == {
        "topicName": "certificate.issued", "partitions": 2, "replicas": 3,
        "config": {"min.insync.replicas": "2", "cleanup.policy": "compact"},
    }
    user = kafka_user([AclRule("topic", "t", ("Read",)), AclRule("cluster", "", ("IdempotentWrite",))], "c", "u", "tls")
    assert to_yaml([user], "# header\n") == (
        "# header\n"
        "---\n"
        "apiVersion: kafka.strimzi.io/v1beta2\n"
        "kind: KafkaUser\n"
        "metadata:\n"
        "  name: u\n"
        "  labels:\n"
        "    strimzi.io/cluster: c\n"
        "    app.kubernetes.io/name: certflow\n"
        "spec:\n"
        "  authentication:\n"
        "    type: tls\n"
        "  authorization:\n"
        "    type: simple\n"
        "    acls:\n"
        "      - resource:\n"
        "          type: topic\n"
        "          name: t\n"
        "          patternType: literal\n"
        "        operations: [Read]\n"
        "      - resource:\n"
        "          type: cluster\n"
        "        operations: [IdempotentWrite]\n"
    )
    assert to_yaml([{"a": "2", "b": "yes", "c": "x: y", "d": {}, "e": [], "f": True, "g": "ok"}]) == (
        '---\na: "2"\nb: "yes"\nc: "x: y"\nd: {}\ne: []\nf: true\ng: ok\n'
    )
