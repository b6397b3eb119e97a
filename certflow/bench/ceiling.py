"""The in-process ceiling: making certificates in a loop on one core, no Kafka.

Every end-to-end figure is divided by this one, measured in the same run, so that
figures from different machines (or one machine on a busy day) compare: what a
worker spends beyond the ceiling is what certflow's stream processing costs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from certflow.credentials.keys import KeyRing, SigningKey
from certflow.events.models import parse_event
from certflow.generate.factory import build_certificate_factory
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.settings import Settings
from certflow.synthetic import TEMPLATE_ID

COURSE, BATCH = "do_bench_course", "bench_batch"


def generate_requests(count: int) -> list[GenerateCertificateRequest]:
    """``count`` one-recipient generate requests, as the issue flow makes them."""
    requests = []
    for i in range(count):
        event = {
            "eid": "BE_JOB_REQUEST", "ets": 0, "mid": f"bench-{i}",
            "edata": {
                "userId": f"bench-{i:06d}", "svgTemplate": "course-completion.svg", "templateId": TEMPLATE_ID,
                "courseName": "डेटा विज्ञान की बुनियाद", "name": "Course Completion Certificate", "tag": BATCH,
                "data": [{"recipientName": f"शिक्षार्थी {i}", "recipientId": f"bench-{i:06d}"}],
                "issuer": {"name": "NCERT", "url": "https://ncert.nic.in/"},
                "signatoryList": [
                    {"name": "D", "id": "D", "designation": "Director", "image": "https://ncert.nic.in/d.png"}
                ],
                "criteria": {"narrative": "Completed"}, "basePath": "https://certs.example.org/certs",
                "related": {"batchId": BATCH, "courseId": COURSE, "type": "course"},
            },
        }
        requests.append(parse_event(
            GenerateCertificateRequest, orjson.dumps(event), max_bytes=10**6,
            context=validation_context(suppress_signatory_errors=True),
        ))
    return requests


async def ceiling(count: int) -> float:
    """Certificates per CPU second on one core: fill, QR code, credential, Ed25519
    signature and the published record, nothing else."""
    settings = Settings()
    requests = generate_requests(count)
    async with SafeFetcher(FetchPolicy.from_settings(settings)) as fetcher:
        factory = build_certificate_factory(settings, fetcher, KeyRing((SigningKey.generate(),)))
        now = datetime.now(UTC)
        await factory.issue(requests[0], now=now, status_list_url="https://x/status/0-0")  # warm up
        started = time.process_time()
        for index, request in enumerate(requests):
            certificate = await factory.issue(
                request, now=now, status_list_url="https://x/status/0-0", status_index=index
            )
            certificate.to_json()
        return count / (time.process_time() - started)
