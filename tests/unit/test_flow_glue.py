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
from certflow.notify.agents import NOTIFY_HEADER
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


async def generate(app: CertflowApp, sunbird_fixture: Any) -> None:
    """Sunbird's generate request for one learner, handled by the generate flow."""
    event = orjson.loads(sunbird_fixture("certgen_EVENT_3_generate_certificate_no_oldId.json"))
    event["edata"]["svgTemplate"] = "course-completion.svg"
    message = Message(app.settings.topics.generate_recipients, partition=1, offset=3, key=USER.encode())
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
    assert record["certificate"]["credentialStatus"]["statusListCredential"].endswith("/status/1-0")
    assert len(to(sent, topics.telemetry)) == 1
    [entries] = app.flows.state.issued[USER.encode()].values()
    assert [entry["status"] for entry in entries.values()] == ["issued"]
    # No SMTP server configured: no notification request is published, the skip is counted.
    assert to(sent, topics.notifications) == []
    metrics = app.services.metrics.notifications.labels("skipped", "no_smtp_server")
    assert metrics._value.get() == 1

    # The registry keeps the certificate's facts, not its drawing.
    stored = Event(Message(topics.certificate_issued, key=published["key"]), published["value"])
    await app.flows.registry.store_certificate(stored)
    kept = app.flows.registry.certificates[published["key"]]["record"]
    assert "svg" not in kept and kept["rendering"]["template"] == "course-completion.svg"
    assert {**kept, "svg": record["svg"]} == record


async def test_registry_indexes_an_access_code_in_the_certificates_partition_once(
    app: CertflowApp, sent: Sent, sunbird_fixture: Any
) -> None:
    """The index entry is written in the step that stores the certificate, under the
    code and the record's partition; no record is sent for it, and a redelivery or a
    second certificate with the same code in another partition is found beside it."""
    topics, registry = app.settings.topics, app.flows.registry
    await generate(app, sunbird_fixture)
    [published] = to(sent, topics.certificate_issued)
    record = orjson.loads(published["value"])
    code = record["accessCode"]
    stored = Event(Message(topics.certificate_issued, partition=3, key=published["key"]), published["value"])
    count = len(sent)
    await registry.store_certificate(stored)
    await registry.store_certificate(stored)  # redelivered
    assert len(sent) == count
    [entry] = registry.access_codes[access_code_key(code, 3)]
    assert entry == {"id": record["id"], "accessCode": code, "recipient": {"name": record["recipient"]["name"]},
                     "certificateName": record["certificateName"], "issuedDate": record["issuedDate"]}

    other = {**record, "id": "another-certificate"}
    await registry.store_certificate(
        Event(Message(topics.certificate_issued, partition=1, key=b"another-certificate"), orjson.dumps(other)))
    found = registry.access_code_entries(code.lower(), range(4))
    assert sorted(entry["id"] for entry in found) == sorted([record["id"], "another-certificate"])
    assert registry.access_code_entries(code, [0, 2]) == []  # partitions that hold none of them


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


def stored_event(app: CertflowApp, published: dict[str, Any], headers: dict[str, bytes]) -> EventT:
    """The published certificate as the registry's agent reads it back."""
    message = Message(app.settings.topics.certificate_issued, key=published["key"])
    return cast(EventT, FakeEvent(message, published["value"], headers=headers))


async def test_with_an_smtp_server_the_learner_is_emailed_once_the_registry_holds_the_certificate(
    emailing_app: CertflowApp, sent: Sent, sunbird_fixture: Any
) -> None:
    app, topics = emailing_app, emailing_app.settings.topics
    await generate(app, sunbird_fixture)
    # Not at issue: the certificate's page would not show it yet.
    assert to(sent, topics.notifications) == []
    [published] = to(sent, topics.certificate_issued)
    intent = orjson.loads(published["headers"][NOTIFY_HEADER])
    assert intent["kind"] == "issued"

    stored = stored_event(app, published, published["headers"])
    await app.flows.registry.store_certificate(stored)
    [notification] = to(sent, topics.notifications)
    request = orjson.loads(notification["value"])
    record = orjson.loads(published["value"])
    assert (request["kind"], request["certificateId"], request["email"]) == ("issued", record["id"], intent["email"])
    assert notification["key"] == record["recipient"]["id"].encode()
    assert app.flows.registry.certificates[published["key"]]["record"]["id"] == record["id"]

    # Stored again (a redelivery): not emailed again.
    await app.flows.registry.store_certificate(stored)
    assert len(to(sent, topics.notifications)) == 1


async def test_a_certificate_without_certflows_notify_header_is_stored_and_nobody_is_emailed(
    emailing_app: CertflowApp, sent: Sent, sunbird_fixture: Any
) -> None:
    app, topics = emailing_app, emailing_app.settings.topics
    await generate(app, sunbird_fixture)
    [published] = to(sent, topics.certificate_issued)
    for headers in ({}, {NOTIFY_HEADER: b"not json"}, {NOTIFY_HEADER: b'{"kind": "revoked", "email": "x@y"}'}):
        app.flows.registry.certificates = {}
        await app.flows.registry.store_certificate(stored_event(app, published, headers))
        assert published["key"] in app.flows.registry.certificates
    assert to(sent, topics.notifications) == []


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

