"""Reproduces the open issue in README ("a stream partition left unread after a rebalance").

Run: PYTHONPATH=. python tests/chaos/repro_unread_partition.py 25
Each round starts a fresh two-worker deployment on a one-node Kafka broker and sends
three generate requests at once; a round that gets fewer than three certificates in
20 s prints, per partition, (end offset, committed offset) and where the logs are.
CERTFLOW_BROKER_ENGINE=noida runs the same on noida-db. Not collected by pytest.
"""

import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from certflow.kafka import bootstrap_servers
from certflow.local import LocalBroker
from tests.integration.conftest import FIXTURES, Deployment


def generate_event(batch, recipient, base_path):
    event = orjson.loads((FIXTURES / "sunbird" / "certgen_EVENT_3_generate_certificate_no_oldId.json").read_bytes())
    event["edata"].update(
        svgTemplate="course-completion.svg",
        basePath=base_path,
        oldId="",
        expiry="1y",
        data=[{"recipientId": recipient[0], "recipientName": recipient[1]}],
    )
    event["edata"]["related"]["batchId"] = batch
    return orjson.dumps(event)


async def dump(url, group, topics):
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(url))
    await c.start()
    await c._client.force_metadata_update()
    a = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(url))
    await a.start()
    for t in topics:
        tps = [TopicPartition(t, p) for p in sorted(c.partitions_for_topic(t) or [])]
        ends = await c.end_offsets(tps)
        com = await a.list_consumer_group_offsets(group, partitions=tps)
        print(
            t,
            "partition: (end, committed)",
            {tp.partition: (ends[tp], com.get(tp).offset if com.get(tp) else None) for tp in tps},
        )
    await c.stop()
    await a.close()


wd = Path(tempfile.mkdtemp(prefix="certflow-repro-"))
shutil.rmtree(wd, ignore_errors=True)
with LocalBroker(wd / "broker") as broker:
    for attempt in range(int(sys.argv[1])):
        d = Deployment(broker, wd / f"r{attempt}", {"CERTFLOW_LOG_LEVEL": "info", "CERTFLOW_LOG_FORMAT": "json"})
        d.start_worker()
        d.start_worker()
        base = f"{d.workers[0].web_url}/certs"
        stalled = False
        try:
            if True:
                batch = f"vc-{uuid.uuid4().hex[:8]}"
                names = [(f"{batch}-l{i}", "Asha") for i in range(3)]
                t = time.monotonic()
                d.send(d.topics.generate_request, [generate_event(batch, n, base) for n in names])
                got = d.collect(d.topics.certificate_issued, 3, lambda r, batch=batch: r["batchId"] == batch, timeout=20)
                took = time.monotonic() - t
                print(f"round {attempt}: {len(got)} in {took:.1f}s", flush=True)
                if len(got) < 3:
                    print("STALL", [g["recipient"]["id"] for g in got], names)
                    asyncio.run(
                        dump(
                            broker.url,
                            d.settings["CERTFLOW_APP_ID"],
                            [d.topics.generate_request, d.topics.generate_recipients],
                        )
                    )
                    for w in d.workers:
                        print(w.get("/stats")[1][:600])
                        print(w.get("/ready"))
                    time.sleep(30)
                    got = d.collect(d.topics.certificate_issued, 3, lambda r, batch=batch: r["batchId"] == batch, timeout=5)
                    print("after 30 s more:", len(got))
                    asyncio.run(
                        dump(
                            broker.url,
                            d.settings["CERTFLOW_APP_ID"],
                            [d.topics.generate_request, d.topics.generate_recipients],
                        )
                    )
                    stalled = True
        finally:
            d.stop()
        if stalled:
            print("logs in", wd / f"r{attempt}")
            break
