"""The agents' glue, in-process: an app built by ``create_app`` from its own settings,
its registered handlers called with events, its tables plain dicts, what it sends
recorded (nothing connects to Kafka)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import orjson
import pytest
from faust.types import EventT

from certflow.app import CertflowApp, create_app
from certflow.credentials.keys import KeyRing, SigningKey
from certflow.partitioning import key_partition
from certflow.reference.models import BatchRecord
from certflow.registry.agents import access_code_key
from certflow.settings import Settings

COURSE, BATCH, USER = "do_11309999837886054415", "0131000245281587206", "user001"


@dataclass
class Message:
    topic: str
    partition: int = 0
    offset: int = 7
    key: bytes | None = None
    timestamp: float = 1764000000.0


@dataclass
class FakeEvent:
    """What a handler reads of a Faust event."""

    message: Message
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)

    @property
    def key(self) -> bytes | None:
        return self.message.key


def Event(message: Message, value: bytes | None) -> EventT:
    """A fake event, typed as the Faust event the handlers take."""
    return cast(EventT, FakeEvent(message, value))


Sent = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Every record the app sends: (topic, send's keyword arguments)."""
    records: Sent = []

    async def send(self: faust.Topic, **kwargs: Any) -> None:
        records.append((self.get_topic_name(), kwargs))

    monkeypatch.setattr(faust.Topic, "send", send)
    return records


@pytest.fixture
def app(tmp_path: Any) -> Iterator[CertflowApp]:
    keys = KeyRing((SigningKey.generate(),)).to_json()
    built = create_app(Settings(app_id="glue", data_dir=tmp_path, signing_keys=keys, partitions=4))
    state = built.flows.state
    for name in ("enrolments", "scores", "learners", "issued", "decisions"):
        setattr(state, name, {})
    built.flows.registry.certificates = {}
    built.flows.registry.status_lists = {}
    built.flows.registry.access_codes = {}
    yield built


def to(sent: Sent, topic: str) -> list[dict[str, Any]]:
    return [record for name, record in sent if name == topic]


def batch(sunbird_fixture: Any) -> BatchRecord:
    template = orjson.loads(sunbird_fixture("preproc_TEMPLATE_1_cert_template.json"))
    return BatchRecord.model_validate({
        "batchid": BATCH, "courseid": COURSE, "courseName": "test Course",
        "cert_templates": {template.get("identifier", "t1"): template},
        "contentTypes": {"content_001": "selfAssess"},
    })


def learner_records(sunbird_fixture: Any) -> dict[str, bytes]:
    profile = orjson.loads(sunbird_fixture("preproc_USER_1_user_read_response.json"))
    profile["result"]["response"]["id"] = USER
    return {
        "enrolments": orjson.dumps({
            "userid": USER, "courseid": COURSE, "batchid": BATCH, "active": True, "status": 2,
            "completedon": 1764000000000, "issued_certificates": [],
        }),
        "scores": orjson.dumps({
            "user_id": USER, "activity_id": COURSE, "context_id": f"cb:{BATCH}", "activity_type": "Course",
            "aggregates": {"score:content_001": 1, "max_score:content_001": 1},
        }),
        "learners": orjson.dumps(profile),
    }


async def ingest(app: CertflowApp, sunbird_fixture: Any) -> None:
    topics = app.settings.topics
    for kind, value in learner_records(sunbird_fixture).items():
        event = Event(Message(getattr(topics, kind), key=USER.encode()), value)
        await app.flows.reference.apply(event)


def job(app: CertflowApp) -> EventT:
    value = {"batchId": BATCH, "courseId": COURSE, "reIssue": False, "requestId": "r1", "userIds": [USER]}
    partition = app.flows.state.learner_partition(USER)
    return Event(Message(app.settings.topics.eligibility, partition=partition), orjson.dumps(value))


async def generate(app: CertflowApp, sunbird_fixture: Any, *, email: str = "") -> None:
    """Sunbird's generate request for one learner (with ``recipientEmail``, if given),
    handled by the generate flow in the learner's partition (where every certificate
    is made)."""
    event = orjson.loads(sunbird_fixture("certgen_EVENT_3_generate_certificate_no_oldId.json"))
    event["edata"]["svgTemplate"] = "course-completion.svg"
    if email:
        event["edata"]["data"][0]["recipientEmail"] = email
    partition = app.flows.state.learner_partition(USER)
    message = Message(app.settings.topics.generate_recipients, partition=partition, offset=3, key=USER.encode())
    try:
        await app.flows.generate.issue_certificate(Event(message, orjson.dumps(event)))
    finally:
        await app.services.fetcher.close()
        await app.services.image_fetcher.close()


async def test_reference_a_bad_record_is_dead_lettered(app: CertflowApp, sent: Sent) -> None:
    topics = app.settings.topics
    event = Event(Message(topics.enrolments, key=USER.encode()), b'{"userid": "user001"}')

    await app.flows.reference.apply(event)

    [failed] = to(sent, topics.issue_failed)
    record = orjson.loads(failed["value"])
    assert (record["errorCode"], record["stage"]) == ("INVALID_PARAM_VALUE", "reference")
    assert app.flows.state.enrolments == {}
    assert app.services.accounting.snapshot()[topics.enrolments]["failed-events-count"] == 1


async def test_issue_an_eligible_learner_becomes_a_generate_request(
    app: CertflowApp, sent: Sent, sunbird_fixture: Any
) -> None:
    await ingest(app, sunbird_fixture)
    cast(Any, app.flows.state).batches = {BATCH: batch(sunbird_fixture)}  # a dict: .get as the directory's

    await app.flows.issue.run_job(job(app))

    [request] = to(sent, app.settings.topics.generate_request)
    assert request["key"] == USER.encode()
    assert orjson.loads(request["value"])["edata"]["data"][0]["recipientId"] == USER
    [decision] = [orjson.loads(record["value"]) for record in to(sent, app.settings.topics.decisions)]
    assert (decision["decision"], decision["userId"]) == ("issued", USER)
    [entries] = app.flows.state.issued[USER.encode()].values()
    assert [entry["status"] for entry in entries.values()] == ["pending"]


async def test_issue_a_skip_becomes_a_decision(app: CertflowApp, sent: Sent, sunbird_fixture: Any) -> None:
    cast(Any, app.flows.state).batches = {BATCH: batch(sunbird_fixture)}  # a dict: .get as the directory's

    await app.flows.issue.run_job(job(app))

    assert to(sent, app.settings.topics.generate_request) == []
    [decision] = [orjson.loads(record["value"]) for record in to(sent, app.settings.topics.decisions)]
    assert (decision["decision"], decision["reason"]) == ("skipped", "not_enrolled")
    assert app.flows.state.decisions[USER.encode()] == [decision]


async def test_generate_a_request_becomes_a_certificate_record(
    app: CertflowApp, sent: Sent, sunbird_fixture: Any
) -> None:
    topics = app.settings.topics
    await generate(app, sunbird_fixture)

    assert to(sent, topics.generate_failed) == []
    [published] = to(sent, topics.certificate_issued)
    record = orjson.loads(published["value"])
    assert published["key"] == record["id"].encode()
    assert record["recipient"]["id"] == USER
    partition = app.flows.state.learner_partition(USER)
    assert record["certificate"]["credentialStatus"]["statusListCredential"].endswith(f"/status/{partition}-0")
    assert len(to(sent, topics.telemetry)) == 1
    [entries] = app.flows.state.issued[USER.encode()].values()
    assert [entry["status"] for entry in entries.values()] == ["issued"]
    # No SMTP server configured: no notification request is published, the skip is counted.
    assert to(sent, topics.notifications) == []
    metrics = app.services.metrics.notifications.labels("skipped", "no_smtp_server")
    assert metrics._value.get() == 1

    # Its id falls in the learner's partition, the one that made it, and the registry
    # kept it in the same step: its facts, not its drawing.
    assert key_partition(published["key"], 4) == partition
    kept = app.flows.registry.certificates[published["key"]]["record"]
    assert "svg" not in kept and kept["rendering"]["template"] == "course-completion.svg"
    assert {**kept, "svg": record["svg"]} == record


async def test_registry_indexes_an_access_code_in_the_certificates_partition_once(
    app: CertflowApp, sent: Sent, sunbird_fixture: Any
) -> None:
    """The index entry is written in the step that makes the certificate, under the
    code and the certificate's partition; no record is sent for it, and a redelivery
    or a second certificate with the same code in another partition is found beside it."""
    topics, registry = app.settings.topics, app.flows.registry
    await generate(app, sunbird_fixture)
    [published] = to(sent, topics.certificate_issued)
    record = orjson.loads(published["value"])
    code, partition = record["accessCode"], app.flows.state.learner_partition(USER)
    count = len(sent)
    await registry.keep(record, partition=partition)  # made again from its message, after a crash
    assert len(sent) == count
    [entry] = registry.access_codes[access_code_key(code, partition)]
    assert entry == {"id": record["id"], "accessCode": code, "recipient": {"name": record["recipient"]["name"]},
                     "certificateName": record["certificateName"], "issuedDate": record["issuedDate"]}

    other_partition = (partition + 1) % 4
    await registry.keep({**record, "id": "another-certificate"}, partition=other_partition)
    found = registry.access_code_entries(code.lower(), range(4))
    assert sorted(entry["id"] for entry in found) == sorted([record["id"], "another-certificate"])
    elsewhere = [p for p in range(4) if p not in (partition, other_partition)]
    assert registry.access_code_entries(code, elsewhere) == []  # partitions that hold none of them


async def test_a_vcapi_credential_is_kept_from_its_topic_in_its_partition(app: CertflowApp, sent: Sent) -> None:
    topics, registry = app.settings.topics, app.flows.registry
    record = {"id": "api-credential", "certificate": {"id": "urn:uuid:api-credential"}}
    event = Event(Message(topics.vcapi_issued, partition=2, key=b"api-credential"), orjson.dumps(record))

    await registry.store_certificate(event)

    assert registry.certificates[b"api-credential"] == {"record": record, "revocation": None}
    assert to(sent, topics.generate_failed) == []


@pytest.fixture
def emailing_app(tmp_path: Any) -> CertflowApp:
    """An app with an SMTP server configured (nothing is sent: records are collected)."""
    keys = KeyRing((SigningKey.generate(),)).to_json()
    app = create_app(Settings(app_id="glue", data_dir=tmp_path, signing_keys=keys, partitions=4,
                              smtp_host="smtp.example.org"))
    app.flows.state.issued = {}
    app.flows.registry.certificates = {}
    app.flows.registry.access_codes = {}
    return app


async def test_with_an_smtp_server_the_learner_is_emailed_once_the_registry_holds_the_certificate(
    emailing_app: CertflowApp, sent: Sent, sunbird_fixture: Any
) -> None:
    app, topics = emailing_app, emailing_app.settings.topics
    await generate(app, sunbird_fixture, email="asha@example.org")
    [published] = to(sent, topics.certificate_issued)
    assert not published.get("headers")  # whom to email never travels on the sink
    [notification] = to(sent, topics.notifications)
    request = orjson.loads(notification["value"])
    record = orjson.loads(published["value"])
    assert (request["kind"], request["certificateId"], request["email"]) == (
        "issued", record["id"], "asha@example.org")
    assert notification["key"] == record["recipient"]["id"].encode()
    # Asked for in the step that kept it: the pages the email links to show it.
    assert app.flows.registry.certificates[published["key"]]["record"]["id"] == record["id"]

    # Made again from the same message (a redelivery after a crash): not emailed again.
    await generate(app, sunbird_fixture, email="asha@example.org")
    assert len(to(sent, topics.certificate_issued)) == 2
    assert len(to(sent, topics.notifications)) == 1


async def test_a_credential_kept_from_the_vcapi_topic_emails_nobody(
    emailing_app: CertflowApp, sent: Sent, sunbird_fixture: Any
) -> None:
    app, topics = emailing_app, emailing_app.settings.topics
    await generate(app, sunbird_fixture)
    [published] = to(sent, topics.certificate_issued)
    app.flows.registry.certificates = {}
    event = Event(Message(topics.vcapi_issued, key=published["key"]), published["value"])
    await app.flows.registry.store_certificate(event)
    assert published["key"] in app.flows.registry.certificates
    assert len(to(sent, topics.notifications)) == 1  # the generate flow's only


async def test_registry_a_revocation_of_an_unknown_id_is_refused(app: CertflowApp, sent: Sent) -> None:
    topics = app.settings.topics
    value = orjson.dumps({"certificateId": "no-such-certificate", "reason": "test", "origin": "admin"})
    event = Event(Message(topics.revocations, key=b"no-such-certificate"), value)

    await app.flows.registry.apply_revocation(event)

    [failed] = to(sent, topics.generate_failed)
    record = orjson.loads(failed["value"])
    assert (record["errorCode"], record["stage"]) == ("CERTIFICATE_NOT_FOUND", "registry")
    assert app.flows.registry.certificates == {}
    assert to(sent, topics.status_updates) == []

