"""A synthetic course batch of N learners: what the benchmark, the demo's throughput
run and the fault tests issue certificates for.

One batch, one SVG template (completion, enrolment status 2), learners with
Devanagari names (so every certificate exercises shaping and Unicode), and their
enrolments; ``completed(i)`` decides who finished the course.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from certflow.kafka import produce
from certflow.topics import TopicNames

TEMPLATE_ID = "tmpl_synthetic"


def load_batch(
    broker_url: str,
    topics: TopicNames,
    *,
    course: str,
    batch: str,
    learners: int,
    prefix: str,
    completed: Callable[[int], bool] = lambda i: True,
    max_batch_size: int = 16384,
    first: int = 0,
) -> list[str]:
    """Produce the batch, its learners (numbered from ``first``) and their enrolments;
    returns the learner ids."""
    template = {
        "identifier": TEMPLATE_ID, "name": "Course Completion Certificate", "url": "course-completion.svg",
        "criteria": '{"enrollment": {"status": 2}}',
        "issuer": '{"name": "NCERT", "url": "https://ncert.nic.in/"}',
        "signatoryList": '[{"name": "D", "id": "D", "designation": "Director", "image": "https://ncert.nic.in/d.png"}]',
    }
    ids = [f"{prefix}-{i:06d}" for i in range(first, first + learners)]

    def send(topic: str, records: list[tuple[bytes, bytes]]) -> None:
        asyncio.run(produce(broker_url, topic, records, max_batch_size=max_batch_size))

    send(topics.batches, [(batch.encode(), orjson.dumps({
        "batchId": batch, "courseId": course, "courseName": "डेटा विज्ञान",
        "certTemplates": {TEMPLATE_ID: template},
    }))])
    send(topics.learners, [
        (uid.encode(), orjson.dumps({"id": uid, "firstName": f"शिक्षार्थी {i}", "lastName": "null"}))
        for i, uid in enumerate(ids)
    ])
    send(topics.enrolments, [
        (uid.encode(), orjson.dumps({"userid": uid, "courseid": course, "batchid": batch, "active": True,
                                     "status": 2 if completed(i) else 1, "completedon": 1764000000000}))
        for i, uid in enumerate(ids)
    ])
    return ids


def issue_requests(course: str, batch: str, ids: list[str], *, chunk: int, mid: str) -> list[bytes]:
    """Sunbird issue requests naming ``ids``, ``chunk`` learners each."""
    return [
        orjson.dumps({
            "eid": "BE_JOB_REQUEST", "ets": 1764000000000, "mid": f"{mid}.{n}",
            "actor": {"id": "Course Certificate Generator", "type": "System"},
            "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
            "object": {"id": f"{batch}_{course}", "type": "CourseCertificateGeneration"},
            "edata": {"action": "issue-certificate", "batchId": batch, "courseId": course,
                      "userIds": ids[start:start + chunk]},
        })
        for n, start in enumerate(range(0, len(ids), chunk))
    ]
