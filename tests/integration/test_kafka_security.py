"""certflow against a Kafka that authenticates and authorizes, as a Strimzi cluster does.

One Apache Kafka node (KRaft) with two client listeners taking PLAIN and SCRAM-SHA-512
logins, SASL_PLAINTEXT and SASL_SSL (its certificate from a CA made for the test,
``tests/pki.py``), and Kafka's StandardAuthorizer on. Workers connect as deploy/kubernetes
has them connect to Strimzi: SASL_SSL, SCRAM-SHA-512, the CA file. Their user may do
only what the ACLs of the generated KafkaUser (``certflow.strimzi.worker_acls``) allow,
on the topics of the generated KafkaTopics (``topic_specs``), created beforehand as
Strimzi's Topic Operator would. So this checks the client settings, TLS, the ACLs and
the topic list together: a worker comes up and issues a certificate with nothing more.
A wrong password is refused at once, saying what to fix, not retried for half a minute.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAuthorizationFailedError, TransactionalIdAuthorizationFailed
from aiokafka.protocol.admin import CreateAclsRequest

from certflow import kafka_client
from certflow.kafka import collect_json, ensure_topics, produce, read_topic
from certflow.kafka_client import KafkaAccessRefused, KafkaConnection
from certflow.kafka_cluster import KafkaCluster
from certflow.local import LocalWorker, shared_signing_keys
from certflow.settings import Settings
from certflow.strimzi import AclRule, TopicSpec, topic_specs, worker_acls
from tests.integration.conftest import FIXTURES
from tests.pki import Pki, make_pki

pytestmark = pytest.mark.integration

USER = "certflow-worker"
PASSWORD = "worker-s3cret"
PARTITIONS = 2
#: Kafka's protocol codes of what the ACLs name (org.apache.kafka.common.acl, .resource).
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactionalId": 5}
PATTERN_TYPES = {"literal": 3, "prefix": 4}
OPERATIONS = {"Read": 3, "Write": 4, "Create": 5, "Describe": 8, "IdempotentWrite": 12}
ALLOW = 3
SUNBIRD_TEMPLATE_DIR = "https://ntpstagingall.blob.core.windows.net/user/cert/"


@dataclass
class Secured:
    """The cluster, and a deployment on it whose workers log in as :data:`USER`."""

    cluster: KafkaCluster
    #: The workers' CERTFLOW_* settings.
    settings: dict[str, str]
    specs: list[TopicSpec]
    workdir: Path
    pki: Pki

    def deployment(self, **overrides: str) -> Settings:
        """The workers' settings as the worker reads them."""
        return as_settings(self.settings, **overrides)

    @property
    def worker(self) -> KafkaConnection:
        """How a worker connects: SASL_SSL, SCRAM-SHA-512 as the worker's user."""
        return self.deployment().kafka

    def plain_login(self, password: str = PASSWORD) -> KafkaConnection:
        """The worker's user with SASL PLAIN on the SASL_PLAINTEXT listener."""
        return KafkaConnection(
            self.cluster.url, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
            sasl_username=USER, sasl_password=password,
        )


def as_settings(environment: dict[str, str], **overrides: str) -> Settings:
    fields = {name.removeprefix("CERTFLOW_").lower(): value for name, value in environment.items()}
    return Settings(**{**fields, **overrides})


async def grant(admin_connection: KafkaConnection, principal: str, rules: list[AclRule]) -> None:
    """Create the ACL bindings of ``rules`` for ``principal``, as Strimzi's User Operator
    does for a KafkaUser (aiokafka has no public call for it)."""
    admin = kafka_client.admin_client(admin_connection)
    await kafka_client.start(admin, admin_connection)
    try:
        for rule in rules:
            name = "kafka-cluster" if rule.resource_type == "cluster" else rule.name
            for operation in rule.operations:
                request = CreateAclsRequest(
                    RESOURCE_TYPES[rule.resource_type], name, PATTERN_TYPES[rule.pattern_type],
                    principal, "*", OPERATIONS[operation], ALLOW,
                )
                response = await admin._send_request(request)
                errors = [entry for entry in response.creation_responses if entry[0]]
                assert not errors, (rule, operation, errors)
    finally:
        await admin.close()


async def create_topics(admin_connection: KafkaConnection, specs: list[TopicSpec]) -> None:
    """The topics as the KafkaTopics describe them (one replica: one node)."""
    admin = kafka_client.admin_client(admin_connection)
    await kafka_client.start(admin, admin_connection)
    try:
        response = await admin.create_topics(
            [NewTopic(spec.name, spec.partitions, spec.replicas, topic_configs=spec.config) for spec in specs]
        )
        assert [entry[1] for entry in response.topic_errors] == [0] * len(specs)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    workdir = tmp_path_factory.mktemp("secured")
    pki = make_pki(workdir)
    cluster = KafkaCluster(workdir / "kafka", nodes=1, sasl_users={USER: PASSWORD}, tls_keystore=pki.server_keystore)
    try:
        cluster.start()
        prefix = f"s{uuid.uuid4().hex[:6]}"
        # As deploy/kubernetes/configmap.yaml and statefulset.yaml set them.
        settings = {
            "CERTFLOW_BROKER": cluster.tls_url,
            "CERTFLOW_APP_ID": f"certflow-{prefix}",
            "CERTFLOW_TOPIC_PREFIX": prefix,
            "CERTFLOW_PARTITIONS": str(PARTITIONS),
            "CERTFLOW_REPLICATION_FACTOR": "1",
            "CERTFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CERTFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CERTFLOW_KAFKA_SASL_USERNAME": USER,
            "CERTFLOW_KAFKA_SASL_PASSWORD": PASSWORD,
            "CERTFLOW_KAFKA_SSL_CAFILE": str(pki.ca),
        }
        deployment = as_settings(settings)
        specs = topic_specs(deployment, brokers=1)
        asyncio.run(create_topics(cluster.connection, specs))
        asyncio.run(grant(cluster.connection, f"User:{USER}", worker_acls(deployment, specs)))
        yield Secured(cluster, settings, specs, workdir, pki)
    finally:
        cluster.stop()


def test_a_wrong_password_is_refused_at_once_saying_what_to_fix(secured: Secured) -> None:
    wrong = [
        (secured.deployment(kafka_sasl_password="not-the-password").kafka, "SASL_SSL", "SCRAM-SHA-512"),
        (secured.plain_login("not-the-password"), "SASL_PLAINTEXT", "PLAIN"),
    ]
    for login, protocol, mechanism in wrong:
        started = time.monotonic()
        with pytest.raises(KafkaAccessRefused) as refused:
            asyncio.run(ensure_topics(login, ["any"], partitions=1))
        # ensure_topics waits 30 s for a broker that does not answer; a refusal is final.
        assert time.monotonic() - started < 10
        message = str(refused.value)
        assert f"refused {protocol} as '{USER}' with SASL {mechanism}" in message
        assert "SaslAuthenticationFailed" in message and "CERTFLOW_KAFKA_SASL_PASSWORD" in message
        assert "not-the-password" not in message


def test_a_client_without_sasl_is_told_the_listener_wants_another_protocol(secured: Secured) -> None:
    with pytest.raises(KafkaAccessRefused, match="listener probably wants another CERTFLOW_KAFKA_SECURITY_PROTOCOL"):
        asyncio.run(produce(secured.cluster.url, secured.specs[0].name, [(None, b"{}")]))


def test_a_broker_certificate_from_an_unknown_ca_is_refused_saying_so(secured: Secured) -> None:
    """Without the CA file, the system's CAs do not know the cluster's CA."""
    untrusting = secured.deployment(kafka_ssl_cafile="").kafka
    with pytest.raises(KafkaAccessRefused, match="certificate verify failed") as refused:
        asyncio.run(produce(untrusting, secured.specs[0].name, [(None, b"{}")]))
    assert "CERTFLOW_KAFKA_SSL_" in str(refused.value)


def test_a_worker_with_a_wrong_password_stops_with_one_line(secured: Secured) -> None:
    settings = {**secured.settings, "CERTFLOW_KAFKA_SASL_PASSWORD": "not-the-password",
                **shared_signing_keys(secured.workdir / "signing-keys.json"),
                "CERTFLOW_DATA_DIR": str(secured.workdir / "refused")}
    done = subprocess.run(
        [sys.executable, "-m", "certflow", "worker"], env={**_environment(), **settings},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and f"refused SASL_SSL as '{USER}' with SASL SCRAM-SHA-512" in errors[0]
    assert "Traceback" not in done.stderr


def test_the_generated_user_may_use_the_generated_topics_and_nothing_else(secured: Secured) -> None:
    async def run() -> None:
        for login in (secured.worker, secured.plain_login()):
            report = await ensure_topics(login, [spec.name for spec in secured.specs], partitions=PARTITIONS)
            assert report.created == [] and len(report.existing) == len(secured.specs)
            topic = secured.specs[0].name
            key = login.sasl_mechanism.encode()
            await produce(login, topic, [(key, b"{}")])
            keys = [record.key async for record in read_topic(login, topic, timeout=2)]
            assert key in keys
        # The authorizer is on: a topic the user has no ACL for is refused.
        admin = secured.cluster.connection
        await ensure_topics(admin, ["not-certflows"], partitions=1)
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(secured.worker, "not-certflows", [(None, b"{}")])

    asyncio.run(run())


def test_exactly_once_adds_the_transactional_ids_of_the_app_and_only_those(secured: Secured) -> None:
    at_least_once = worker_acls(secured.deployment(), secured.specs)
    exactly_once = worker_acls(secured.deployment(processing_guarantee="exactly_once"), secured.specs)
    extra = [rule for rule in exactly_once if rule not in at_least_once]
    assert [rule.resource_type for rule in extra] == ["transactionalId"]
    asyncio.run(grant(secured.cluster.connection, f"User:{USER}", extra))
    topic = secured.specs[0].name
    app_id = secured.settings["CERTFLOW_APP_ID"]

    async def transaction(transactional_id: str) -> None:
        producer = kafka_client.producer(secured.worker, transactional_id=transactional_id, enable_idempotence=True)
        await kafka_client.start(producer, secured.worker)
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"{}")
        finally:
            await producer.stop()

    # As Faust names them: <app id>-<group>-<partition> (certflow.faust_fixes.transport).
    asyncio.run(transaction(f"{app_id}-0-1"))
    with pytest.raises(TransactionalIdAuthorizationFailed):
        asyncio.run(transaction(f"other-{app_id}-0-1"))


def test_a_worker_with_the_generated_user_comes_up_and_issues_a_certificate(secured: Secured) -> None:
    settings = {
        **secured.settings,
        **shared_signing_keys(secured.workdir / "signing-keys.json"),
        "CERTFLOW_TEMPLATE_ROOT": str(FIXTURES / "templates"),
        "CERTFLOW_TEMPLATE_REWRITES": orjson.dumps(
            {SUNBIRD_TEMPLATE_DIR: (FIXTURES / "templates").as_uri() + "/"}
        ).decode(),
    }
    with LocalWorker(settings, workdir=secured.workdir) as worker:
        assert worker.get("/ready")[0] == 200
        event = orjson.loads((FIXTURES / "sunbird" / "certgen_EVENT_3_generate_certificate_no_oldId.json").read_bytes())
        batch = f"secured-{uuid.uuid4().hex[:6]}"
        event["edata"]["related"]["batchId"] = batch
        event["edata"]["data"] = [{"recipientId": "learner-1", "recipientName": "Asha"}]
        topics = secured.deployment().topics
        asyncio.run(produce(secured.worker, topics.generate_request, [(b"learner-1", orjson.dumps(event))]))
        issued = asyncio.run(collect_json(
            secured.worker, topics.certificate_issued, 1, lambda record: record.get("batchId") == batch, timeout=30,
        ))
        assert [record["recipient"] for record in issued] == [{"id": "learner-1", "name": "Asha"}]
    assert PASSWORD not in worker.log_path.read_text(errors="replace")


def _environment() -> dict[str, str]:
    """This process's environment without any CERTFLOW_* setting of the developer's."""
    return {name: value for name, value in os.environ.items() if not name.startswith("CERTFLOW_")}
