"""The generate flow end to end: Sunbird events in, certificates out, on a real broker."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from io import BytesIO

import orjson
import pytest
import zxingcpp
from lxml import etree
from PIL import Image

from tests.integration.conftest import FIXTURES, Deployment

pytestmark = pytest.mark.integration

SUNBIRD_TEMPLATE_DIR = "https://ntpstagingall.blob.core.windows.net/user/cert/"
SVG = "{http://www.w3.org/2000/svg}"

NAMES = [
    "Zoë O'Brien & <Partners> \"Ltd\"",
    "राजेश कुमार",
    "முருகன் செல்வம்",
    "محمد علی",
    "عائشہ صدیقی",
    "সুব্রত মুখোপাধ্যায়",
    "Name with ${courseName} inside",
    "ગીતા પટેલ",
    "శ్రీనివాస్ రావు",
    "李小龍 & 王菲",
]


@pytest.fixture(scope="module")
def deployment(broker, template_server, tmp_path_factory) -> Iterator[Deployment]:
    """One worker whose Sunbird template URLs are served by a local HTTP server."""
    running = Deployment(
        broker,
        tmp_path_factory.mktemp("generate"),
        {
            "CERTFLOW_TEMPLATE_REWRITES": orjson.dumps({SUNBIRD_TEMPLATE_DIR: template_server}).decode(),
            "CERTFLOW_TEMPLATE_ALLOWED_HOSTS": "127.0.0.1",
            "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
            "CERTFLOW_TEMPLATE_ROOT": str(FIXTURES / "templates"),
        },
    )
    running.start_worker()
    yield running
    running.stop()


def fixture_event(name: str) -> dict:
    return orjson.loads((FIXTURES / "sunbird" / name).read_bytes())


def event_for(batch: str, recipients: list[tuple[str, str]]) -> dict:
    """EVENT_3 with its own batch (so a test finds its records) and recipients."""
    event = fixture_event("certgen_EVENT_3_generate_certificate_no_oldId.json")
    event["edata"]["related"]["batchId"] = batch
    event["edata"]["data"] = [{"recipientId": rid, "recipientName": name} for rid, name in recipients]
    return event


def qr_content(svg: str) -> str:
    """Decode the QR code embedded in a certificate's SVG, as a phone would."""
    match = re.search(r'data:image/png;base64,([A-Za-z0-9+/=]+)', svg)
    assert match, "no QR code image in the certificate"
    image = Image.open(BytesIO(base64.b64decode(match.group(1))))
    barcodes = zxingcpp.read_barcodes(image)
    assert len(barcodes) == 1
    return barcodes[0].text


def texts(svg: str) -> list[str]:
    root = etree.fromstring(svg.encode())
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text", f"{SVG}tspan")]


def test_sunbird_fixture_events_get_their_expected_outcomes(deployment: Deployment) -> None:
    """Sunbird's own expectations: EVENT_1 (a re-issue) is issued, EVENT_2 (no template)
    fails validation, EVENT_3 and EVENT_4 are skipped as already issued.

    EVENT_1 replaces ``certificateId``; certflow lets a re-issue replace only a
    certificate the learner holds, so the learner's enrolment records that Sunbird
    issued it (Sunbird's ``issued_certificates``), as a migrated learner's does.
    """
    topics = deployment.topics
    deployment.send_keyed(topics.enrolments, [(b"user001", orjson.dumps({
        "userid": "user001", "courseid": "do_11309999837886054415", "batchid": "0131000245281587206",
        "active": True, "status": 2,
        "issued_certificates": [{"name": "100PercentCompletionCertificate", "identifier": "certificateId"}],
    }))])
    deployment.wait_for_reference(batches=0)
    files = [
        "certgen_EVENT_1_generate_certificate_reissue_oldId.json",
        "certgen_EVENT_2_generate_certificate_empty_svgTemplate.json",
        "certgen_EVENT_3_generate_certificate_no_oldId.json",
        "certgen_EVENT_4_generate_certificate_blank_signatory.json",
    ]
    raw = [(FIXTURES / "sunbird" / name).read_bytes() for name in files]
    # Keyed by learner, as the issue flow sends them, so they are handled in order.
    deployment.send(topics.generate_request, raw, key=b"user001")

    sunbird_batch = "0131000245281587206"
    issued = deployment.collect(topics.certificate_issued, 1, lambda r: r["batchId"] == sunbird_batch)
    failed = deployment.collect(topics.generate_failed, 1, lambda r: r["payload"] == raw[1].decode())
    skipped = deployment.collect(topics.decisions, 2, lambda r: r["batchId"] == sunbird_batch)
    audits = deployment.collect(topics.telemetry, 1, lambda r: r["context"]["cdata"][0]["id"] == sunbird_batch)

    # EVENT_1 carries oldId "certificateId": a re-issue, a new generation.
    [certificate] = issued
    assert certificate["oldId"] == "certificateId"
    assert uuid.UUID(certificate["id"]).version == 5
    assert certificate["verifyUrl"] == f"https://dev.sunbirded.org/certs/{certificate['id']}"
    assert qr_content(certificate["svg"]) == certificate["verifyUrl"]
    assert re.fullmatch(r"[A-Z][1-9][A-Z][1-9][A-Z][1-9]", certificate["accessCode"])
    assert certificate["recipient"] == {"id": "user001", "name": "Creation"}
    assert certificate["course"] == {"id": "do_11309999837886054415", "name": "new course may23"}
    assert certificate["certificate"]["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert "${" not in certificate["svg"]
    assert [a["object"]["id"] for a in audits] == [certificate["id"]]
    assert audits[0]["eid"] == "AUDIT" and audits[0]["edata"]["type"] == "certificate-issued-svg"

    # EVENT_2 has an empty svgTemplate: rejected as Sunbird rejects it, but kept.
    assert failed[0]["errorCode"] == "MANDATORY_PARAMETER_MISSING"
    assert "svgTemplate" in failed[0]["errorMessage"]
    assert failed[0]["source"]["topic"] == topics.generate_request

    # EVENT_3 and EVENT_4 name a certificate the learner already has.
    assert [(d["decision"], d["reason"], d["stage"]) for d in skipped] == [
        ("skipped", "already_issued", "generate")
    ] * 2
    assert {d["certificateId"] for d in skipped} == {certificate["id"]}


def test_names_in_every_script_come_out_well_formed_and_a_replay_doubles_nothing(
    deployment: Deployment,
) -> None:
    batch = f"mixed-{uuid.uuid4().hex[:8]}"
    recipients = [(f"learner-{i:03d}", f"{NAMES[i % len(NAMES)]} {i}") for i in range(200)]
    events = [orjson.dumps(event_for(batch, [recipient])) for recipient in recipients]
    deployment.send(deployment.topics.generate_request, events)

    first = deployment.collect(deployment.topics.certificate_issued, 200, lambda r: r["batchId"] == batch)
    assert len(first) == 200
    by_recipient = {r["recipient"]["id"]: r for r in first}
    assert len(by_recipient) == 200
    for recipient_id, name in recipients:
        record = by_recipient[recipient_id]
        assert record["recipient"]["name"] == name
        # Parses as XML, and the name is one text node, exactly as given: a name
        # containing `${courseName}`, `&` or `<` stays literal.
        assert name in texts(record["svg"])

    # A replay re-creates the same certificates, which are already issued: each is
    # skipped, naming the certificate it would have been, and none is doubled.
    deployment.send(deployment.topics.generate_request, events)
    replayed = deployment.collect(deployment.topics.decisions, 200, lambda r: r["batchId"] == batch)
    assert len(replayed) == 200
    assert {d["reason"] for d in replayed} == {"already_issued"}
    assert {d["certificateId"]: d["userId"] for d in replayed} == {
        r["id"]: r["recipient"]["id"] for r in first
    }
    assert len(deployment.collect(
        deployment.topics.certificate_issued, 201, lambda r: r["batchId"] == batch, timeout=3
    )) == 200


def test_a_request_for_several_recipients_gives_each_their_own_certificate(deployment: Deployment) -> None:
    batch = f"multi-{uuid.uuid4().hex[:8]}"
    recipients = [("learner-a", "Asha"), ("learner-b", "Bilal"), ("learner-c", "Chitra")]
    deployment.send(deployment.topics.generate_request, [orjson.dumps(event_for(batch, recipients))])

    issued = deployment.collect(deployment.topics.certificate_issued, 3, lambda r: r["batchId"] == batch)
    assert sorted((r["recipient"]["id"], r["recipient"]["name"]) for r in issued) == recipients
    assert len({r["id"] for r in issued}) == 3


def test_a_poison_message_is_dead_lettered_and_does_not_block_its_partition(
    deployment: Deployment,
) -> None:
    batch = f"poison-{uuid.uuid4().hex[:8]}"
    key = f"key-{batch}".encode()
    poison = b"\xff\xfe{not json at all"
    valid = orjson.dumps(event_for(batch, [("learner-after-poison", "Deepa")]))
    # The same key puts both on the same partition, poison first.
    deployment.send(deployment.topics.generate_request, [poison, valid], key=key)

    failed = deployment.collect(
        deployment.topics.generate_failed, 1, lambda r: r["source"].get("key") == key.decode()
    )
    issued = deployment.collect(deployment.topics.certificate_issued, 1, lambda r: r["batchId"] == batch)
    assert failed[0]["errorCode"] == "MALFORMED_JSON"
    assert failed[0]["payloadEncoding"] == "base64"
    assert base64.b64decode(failed[0]["payload"]) == poison
    assert issued[0]["recipient"]["id"] == "learner-after-poison"


def test_a_template_that_cannot_be_fetched_fails_only_its_own_recipients(deployment: Deployment) -> None:
    batch = f"missing-{uuid.uuid4().hex[:8]}"
    broken = event_for(batch, [("learner-x", "Xavier")])
    broken["edata"]["svgTemplate"] = SUNBIRD_TEMPLATE_DIR + "no-such-template.svg"
    outside = event_for(batch, [("learner-y", "Yamini")])
    outside["edata"]["svgTemplate"] = "../../../etc/passwd"
    deployment.send(deployment.topics.generate_request, [orjson.dumps(broken), orjson.dumps(outside)])

    failed = deployment.collect(
        deployment.topics.generate_failed, 2, lambda r: f'"{batch}"' in r["payload"]
    )
    codes = {orjson.loads(r["payload"])["edata"]["data"][0]["recipientId"]: r["errorCode"] for r in failed}
    assert codes == {"learner-x": "TEMPLATE_FETCH_FAILED", "learner-y": "TEMPLATE_NOT_ALLOWED"}
    assert all(r["stage"] == "recipient" for r in failed)


def test_stats_account_for_every_event(deployment: Deployment) -> None:
    batch = f"stats-{uuid.uuid4().hex[:8]}"
    deployment.send(
        deployment.topics.generate_request,
        [orjson.dumps(event_for(batch, [("learner-s", "Sita"), ("learner-t", "Tara")])), b"not json"],
    )
    deployment.collect(deployment.topics.certificate_issued, 2, lambda r: r["batchId"] == batch)
    deployment.collect(deployment.topics.generate_failed, 1, lambda r: r["payload"] == "not json")

    status, body = deployment.workers[0].get("/stats")
    assert status == 200
    stats = orjson.loads(body)
    for topic in (deployment.topics.generate_request, deployment.topics.generate_recipients):
        counts = stats["topics"][topic]
        assert counts["total-events-count"] == (
            counts["success-events-count"] + counts["skipped-event-count"] + counts["failed-events-count"]
        )
        assert counts["success-events-count"] >= 1
    assert stats["topics"][deployment.topics.generate_request]["failed-events-count"] >= 1
    assert stats["templateCache"]["misses"] >= 1


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus exposition, 0 when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_move_as_certificates_are_made(deployment: Deployment) -> None:
    worker = deployment.workers[0]
    topic = deployment.topics.generate_request
    before = worker.get("/metrics")[1].decode()
    batch = f"metrics-{uuid.uuid4().hex[:8]}"
    # Two recipients: the request is split, so both of the flow's topics count.
    deployment.send(topic, [orjson.dumps(event_for(batch, [("learner-m", "Meera"), ("learner-n", "Nila")]))])
    deployment.collect(deployment.topics.certificate_issued, 2, lambda r: r["batchId"] == batch)

    status, body = worker.get("/metrics")
    after = body.decode()
    assert status == 200
    assert metric(after, "certflow_total_events_count_total", topic=topic) == metric(
        before, "certflow_total_events_count_total", topic=topic) + 1
    assert metric(after, "certflow_success_events_count_total", topic=deployment.topics.generate_recipients) > metric(
        before, "certflow_success_events_count_total", topic=deployment.topics.generate_recipients)
    assert metric(after, "certflow_certificate_latency_seconds_count") > metric(
        before, "certflow_certificate_latency_seconds_count")
    lookups = lambda text: sum(  # noqa: E731
        metric(text, f"certflow_cache_{kind}_total", cache="templates") for kind in ("hits", "misses")
    )
    assert lookups(after) == lookups(before) + 2
    assert 'certflow_event_processing_seconds_bucket{le="0.01",stage="recipient"}' in after
    assert "certflow_consumer_lag{" in after


def test_a_request_keyed_by_its_learner_is_made_where_it_is_read(deployment: Deployment) -> None:
    """The issue flow keys every generate request by its learner, so it is already in
    the partition that holds the learner's tables: made there, with no second hop."""
    recipients_topic = deployment.topics.generate_recipients
    forwarded = lambda: orjson.loads(deployment.workers[0].get("/stats")[1])["topics"].get(  # noqa: E731
        recipients_topic, {}).get("total-events-count", 0)
    before = forwarded()
    batch = f"in-place-{uuid.uuid4().hex[:8]}"
    learner = f"learner-{batch}"
    deployment.send(deployment.topics.generate_request, [orjson.dumps(event_for(batch, [(learner, "Ila")]))],
                    key=learner.encode())

    [record] = deployment.collect(deployment.topics.certificate_issued, 1, lambda r: r["batchId"] == batch)
    assert record["recipient"]["id"] == learner
    # Its status list is one of the generate topic's, apart from those of split requests.
    status_list = record["certificate"]["credentialStatus"]["statusListCredential"].rsplit("/", 1)[-1]
    assert status_list.startswith("g")
    assert forwarded() == before
