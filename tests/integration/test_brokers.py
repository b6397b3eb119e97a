"""The local broker engines themselves: a three-node Apache Kafka cluster, and noida-db.

The Kafka cluster is the one the fault tests run on: topics certflow creates on it are
replicated three times with ``min.insync.replicas`` 2 (compacted where they hold
state), and a partition's leader killed with SIGKILL leaves the topic writable with
acks=all and readable in full; the node restarted with its data catches up.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from certflow.kafka import bootstrap_servers, ensure_topics, produce, read_topic
from certflow.local import LocalBroker

pytestmark = pytest.mark.integration


async def topic_settings(broker_url: str, topic: str) -> tuple[int, dict[str, str]]:
    """Replicas of partition 0, and the topic's configuration."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url))
    await admin.start()
    try:
        # A topic just created is known to its controller first: ask until the node
        # answering has its partitions too.
        for _ in range(50):
            [description] = await admin.describe_topics([topic])
            if description["partitions"]:
                break
            await asyncio.sleep(0.2)
        replicas = len(description["partitions"][0]["replicas"])
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = response.resources[0][4]
        return replicas, {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()


async def count(broker_url: str, topic: str) -> int:
    return len([record async for record in read_topic(broker_url, topic, timeout=3)])


def test_a_three_node_kafka_cluster_replicates_and_survives_a_killed_leader(tmp_path: Path) -> None:
    with LocalBroker(tmp_path / "kafka", nodes=3) as broker:
        assert broker.cluster is not None
        cluster = json.loads((tmp_path / "kafka" / "cluster.json").read_text())
        assert [node["id"] for node in cluster["nodes"]] == [1, 2, 3]
        assert cluster["bootstrap"].split(",") == [f"127.0.0.1:{node['port']}" for node in cluster["nodes"]]
        assert {node["role"] for node in cluster["nodes"]} == {"broker,controller"}
        assert [node["pid"] for node in cluster["nodes"]] == broker.pids

        report = asyncio.run(ensure_topics(broker.url, ["events", "registry"], partitions=2, compacted=["registry"]))
        assert (report.replication_factor, report.min_insync_replicas) == (3, 2)
        replicas, config = asyncio.run(topic_settings(broker.url, "events"))
        assert replicas == 3 and config["min.insync.replicas"] == "2" and config["cleanup.policy"] == "delete"
        _, config = asyncio.run(topic_settings(broker.url, "registry"))
        assert config["cleanup.policy"] == "compact"

        records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(400)]
        asyncio.run(produce(broker.url, "events", records[:200]))
        leader = broker.cluster.leader_of("events", 0)
        broker.cluster.kill_node(leader)
        # Two of three replicas are left: enough for min.insync.replicas 2.
        asyncio.run(produce(broker.url, "events", records[200:]))
        assert asyncio.run(count(broker.url, "events")) == 400
        assert broker.cluster.leader_of("events", 0) != leader

        broker.cluster.restart_node(leader)
        restarted = json.loads((tmp_path / "kafka" / "cluster.json").read_text())
        assert restarted["nodes"][leader - 1]["pid"] == broker.cluster.node(leader).pid
    pids = broker.pids
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.skipif(
    shutil.which("noida-db") is None and not (Path(sys.executable).parent / "noida-db").exists(),
    reason="noida-db is not installed",
)
def test_the_noida_engine_takes_topics_and_records(tmp_path: Path) -> None:
    """noida-db (``--engine noida``, for a machine without Java): a smoke test only."""
    with LocalBroker(tmp_path / "noida", engine="noida") as broker:
        report = asyncio.run(ensure_topics(broker.url, ["smoke"], partitions=2))
        assert report.created == ["smoke"] and report.replication_factor == 1
        asyncio.run(produce(broker.url, "smoke", [(f"k{i}".encode(), b"v") for i in range(50)]))
        assert asyncio.run(count(broker.url, "smoke")) == 50
