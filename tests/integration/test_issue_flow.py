"""The issue flow end to end on a real broker with two workers: who gets a certificate.

Reference data goes in on its topics; issue requests go in as Sunbird sends them; what
comes out of ``certificate.issued`` and ``certificate.decisions`` is checked against
expectations computed here, independently of certflow's own rules.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from tests.integration.conftest import PARTITIONS, Deployment

pytestmark = pytest.mark.integration

LEARNERS = 1000
COMPLETION = "Course Completion Certificate"
MERIT = "Merit Certificate"


def template(identifier: str, name: str, criteria: dict, **extra: object) -> dict:
    """A template as Sunbird stores it: nested values are JSON strings."""
    return {
        "identifier": identifier,
        "name": name,
        "url": "course-completion.svg",
        "criteria": orjson.dumps(criteria).decode(),
        "issuer": orjson.dumps({"name": "NCERT", "url": "https://ncert.nic.in/"}).decode(),
        "signatoryList": orjson.dumps(
            [{"name": "Director", "id": "DIR", "designation": "Director", "image": "https://ncert.nic.in/s.png"}]
        ).decode(),
        **{key: orjson.dumps(value).decode() for key, value in extra.items()},
    }


def learner_row(i: int) -> dict | None:
    if i % 10 == 9:
        return None  # no profile: unknown_learner
    return {"id": f"learner-{i:04d}", "firstName": f"शिक्षार्थी{i}", "lastName": "null" if i % 2 else "Kumar",
            "rootOrgId": "org-1", "userLocations": [{"type": "state", "name": "Karnataka"}]}


def enrolment_row(i: int, course: str, batch: str) -> dict | None:
    if i % 10 == 0:
        return None  # not_enrolled
    return {"userid": f"learner-{i:04d}", "courseid": course, "batchid": batch,
            "active": i % 10 != 1, "status": 1 if i % 10 == 2 else 2,
            "completedon": 1764000000000}


def expected_reason(i: int, name: str) -> str | None:
    """The decision for learner i and a template, written out by hand."""
    if i % 10 == 0:
        return "not_enrolled"
    if i % 10 == 1:
        return "inactive"
    if i % 10 == 2:
        return "status_mismatch"
    if name == MERIT and (i % 100) < 80:
        return "score_below"
    if i % 10 == 9:
        return "unknown_learner"
    return None


def issue_request(batch: str, course: str, user_ids: list[str] | None, *, reissue: bool = False) -> bytes:
    edata: dict = {"action": "issue-certificate", "batchId": batch, "courseId": course,
                   "iteration": 1, "trigger": "auto-issue", "reIssue": reissue}
    if user_ids is not None:
        edata["userIds"] = user_ids
    return orjson.dumps({
        "eid": "BE_JOB_REQUEST", "ets": 1764000000000, "mid": f"LP.{uuid.uuid4()}",
        "actor": {"id": "Course Certificate Generator", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "object": {"id": f"{batch}_{course}", "type": "CourseCertificateGeneration"}, "edata": edata,
    })


def partition_of(user_id: str) -> int:
    partitions = list(range(PARTITIONS))
    return DefaultPartitioner()(user_id.encode(), partitions, partitions)


@pytest.fixture(scope="module")
def deployment(broker, tmp_path_factory) -> Iterator[Deployment]:
    running = Deployment(broker, tmp_path_factory.mktemp("issue"), {"CERTFLOW_LOG_LEVEL": "warn"})
    running.start_worker()
    running.start_worker()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def batch(deployment: Deployment) -> dict:
    """A batch of 1,000 learners with mixed eligibility, loaded into the tables."""
    course, batch_id = "do_course_1k", "batch_1k"
    topics = deployment.topics
    deployment.send(topics.batches, [orjson.dumps({
        "batchid": batch_id, "courseid": course, "courseName": "डेटा विज्ञान", "name": "Batch 1k",
        "cert_templates": {
            "tmpl_completion": template("tmpl_completion", COMPLETION, {"enrollment": {"status": 2}},
                                        additionalProps={"location": ["state"], "course": ["name"]}),
            "tmpl_merit": template("tmpl_merit", MERIT,
                                   {"enrollment": {"status": 2}, "assessment": {"score": {">=": 80}}},
                                   additionalProps={"assessment": ["score"]}),
            "tmpl_pdf": {**template("tmpl_pdf", "PDF only", {"enrollment": {}}), "url": "old.pdf"},
        },
        "contentTypes": {"content_001": "SelfAssess"},
    })], key=batch_id.encode())
    learners = [(f"learner-{i:04d}", learner_row(i)) for i in range(LEARNERS)]
    enrolments = [(f"learner-{i:04d}", enrolment_row(i, course, batch_id)) for i in range(LEARNERS)]
    scores = [(f"learner-{i:04d}", {"user_id": f"learner-{i:04d}", "activity_id": course,
                                     "context_id": f"cb:{batch_id}", "activity_type": "Course",
                                     "aggregates": {"score:content_001": i % 100, "max_score:content_001": 100}})
              for i in range(LEARNERS)]
    for topic, rows in ((topics.learners, learners), (topics.enrolments, enrolments), (topics.scores, scores)):
        deployment.send_keyed(topic, [(key.encode(), orjson.dumps(row)) for key, row in rows if row is not None])
    deployment.wait_for_reference()
    return {"course": course, "batch": batch_id}


def test_a_batch_of_1000_learners_issues_exactly_the_eligible_ones_once(deployment, batch) -> None:
    user_ids = [f"learner-{i:04d}" for i in range(LEARNERS)]
    deployment.send(deployment.topics.issue_request, [issue_request(batch["batch"], batch["course"], user_ids)])

    expected = {
        (f"learner-{i:04d}", name): expected_reason(i, name) for i in range(LEARNERS) for name in (COMPLETION, MERIT)
    }
    eligible = sorted(key for key, reason in expected.items() if reason is None)
    decisions = deployment.collect(
        deployment.topics.decisions, len(expected), lambda d: d["batchId"] == batch["batch"]
    )
    issued = deployment.collect(
        deployment.topics.certificate_issued, len(eligible), lambda r: r["batchId"] == batch["batch"]
    )

    assert {(d["userId"], d["certificateName"]): d["reason"] for d in decisions} == expected
    assert Counter(d["reason"] for d in decisions)["score_below"] > 0
    assert sorted((r["recipient"]["id"], r["certificateName"]) for r in issued) == eligible
    assert len({r["id"] for r in issued}) == len(eligible)
    by_decision = {d["certificateId"] for d in decisions if d["decision"] == "issued"}
    assert by_decision == {r["id"] for r in issued}

    sample = next(r for r in issued if r["recipient"]["id"] == "learner-0013")
    assert sample["recipient"]["name"] == "शिक्षार्थी13"  # last name "null" dropped
    assert sample["related"]["location"] == {"state": "Karnataka"}
    merit = next(r for r in issued if r["certificateName"] == MERIT)
    assert merit["related"]["assessment"]["score"]["content_001"] >= 80


def test_a_repeated_request_issues_nothing_new(deployment, batch) -> None:
    user_ids = [f"learner-{i:04d}" for i in range(0, LEARNERS, 7)]
    request = issue_request(batch["batch"], batch["course"], user_ids)
    mid = orjson.loads(request)["mid"]
    deployment.send(deployment.topics.issue_request, [request])

    decisions = deployment.collect(
        deployment.topics.decisions, 2 * len(user_ids), lambda d: d["requestId"] == mid
    )
    assert len(decisions) == 2 * len(user_ids)
    assert {d["decision"] for d in decisions} == {"skipped"}
    assert "already_issued" in {d["reason"] for d in decisions}
    issued_before = sum(1 for reason in (expected_reason(i, n) for i in range(LEARNERS) for n in (COMPLETION, MERIT)) if reason is None)
    assert len(deployment.collect(
        deployment.topics.certificate_issued, issued_before + 1, lambda r: r["batchId"] == batch["batch"], timeout=3
    )) == issued_before


def test_a_reissue_request_issues_new_certificates_that_name_the_old_ones(deployment, batch) -> None:
    user_ids = ["learner-0083", "learner-0084", "learner-0085"]  # eligible for both templates
    first = {
        (r["recipient"]["id"], r["certificateName"]): r["id"]
        for r in deployment.collect(deployment.topics.certificate_issued, 10_000,
                                    lambda r: r["batchId"] == batch["batch"], timeout=3)
        if r["recipient"]["id"] in user_ids
    }
    assert len(first) == 6
    deployment.send(deployment.topics.issue_request,
                    [issue_request(batch["batch"], batch["course"], user_ids, reissue=True)])

    reissued = deployment.collect(
        deployment.topics.certificate_issued, 6, lambda r: r["recipient"]["id"] in user_ids and r["oldId"]
    )
    assert {(r["recipient"]["id"], r["certificateName"]): r["oldId"] for r in reissued} == first
    assert not {r["id"] for r in reissued} & set(first.values())


def test_a_request_without_learners_reaches_every_partition(deployment, batch) -> None:
    course, batch_id = "do_course_sweep", "batch_sweep"
    deployment.send(deployment.topics.batches, [orjson.dumps({
        "batchId": batch_id, "courseId": course, "courseName": "Sweep",
        "certTemplates": {"tmpl_sweep": template("tmpl_sweep", "Sweep Certificate", {"enrollment": {"status": 2}})},
    })], key=batch_id.encode())
    enrolled = [f"learner-{i:04d}" for i in range(3, LEARNERS, 10)][:40]  # have profiles, active, status 2
    deployment.send_keyed(deployment.topics.enrolments, [
        (user_id.encode(), orjson.dumps(
            {"userid": user_id, "courseid": course, "batchid": batch_id, "active": True, "status": 2}))
        for user_id in enrolled
    ])
    assert {partition_of(user_id) for user_id in enrolled} == set(range(PARTITIONS))
    deployment.wait_for_reference(batches=2)

    deployment.send(deployment.topics.issue_request, [issue_request(batch_id, course, None)])

    issued = deployment.collect(deployment.topics.certificate_issued, len(enrolled), lambda r: r["batchId"] == batch_id)
    assert sorted(r["recipient"]["id"] for r in issued) == sorted(enrolled)


def test_decisions_are_served_by_any_worker(deployment, batch) -> None:
    for user_id in ("learner-0013", "learner-0020", "learner-0031", "learner-0046"):
        for worker in deployment.workers:
            status, body = worker.get(f"/learners/{user_id}/decisions")
            assert status == 200, body
            answer = orjson.loads(body)
            names = {(d["certificateName"], d["reason"]) for d in answer["decisions"] if d["requestId"]}
            assert answer["userId"] == user_id and names


def test_an_invalid_request_is_dead_lettered(deployment, batch) -> None:
    unknown = issue_request("no-such-batch", batch["course"], ["learner-0013"])
    wrong_action = orjson.loads(issue_request(batch["batch"], batch["course"], ["learner-0013"]))
    wrong_action["edata"]["action"] = "something-else"
    deployment.send(deployment.topics.issue_request, [unknown, orjson.dumps(wrong_action), b"{"])

    failed = deployment.collect(deployment.topics.issue_failed, 3, lambda r: r["stage"] == "intake")
    assert sorted(r["errorCode"] for r in failed) == ["INVALID_PARAM_VALUE", "MALFORMED_JSON", "UNKNOWN_BATCH"]
