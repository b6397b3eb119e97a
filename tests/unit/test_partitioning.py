"""Certificate ids fall in their learner's partition, as Kafka itself places them."""

from __future__ import annotations

import uuid

import orjson
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from certflow.credentials.identity import CERTIFICATE_NAMESPACE, CertifiedFacts, _placed_certificate_id
from certflow.partitioning import key_partition, placed_key

ids = st.uuids(version=4).map(str)
learner_ids = st.text(min_size=1, max_size=40)


def kafka_places(key: bytes, partitions: int) -> int:
    """Where aiokafka's producer sends ``key`` (its default partitioner)."""
    return DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))


@settings(max_examples=300)
@given(ids, st.integers(min_value=1, max_value=1024), st.data())
def test_a_placed_key_is_where_kafka_puts_it_and_differs_only_in_its_last_four_digits(
    identifier: str, partitions: int, data: st.DataObject
) -> None:
    partition = data.draw(st.integers(min_value=0, max_value=partitions - 1))
    placed = placed_key(identifier, partition, partitions)
    assert kafka_places(placed.encode(), partitions) == partition
    assert placed[:32] == identifier[:32] and len(placed) == 36
    int(placed[32:], 16)  # still four hexadecimal digits


@given(ids, st.integers(min_value=1, max_value=64))
def test_a_key_already_in_place_is_kept(identifier: str, partitions: int) -> None:
    assert placed_key(identifier, key_partition(identifier.encode(), partitions), partitions) == identifier


@settings(max_examples=200)
@given(learner_ids, st.text(max_size=20), st.sampled_from([1, 3, 8, 32, 1024]))
def test_a_certificate_id_is_a_uuid5_of_its_facts_placed_with_its_learner(
    learner: str, course: str, partitions: int
) -> None:
    facts = CertifiedFacts(learner, course, "batch", "template", "name")
    certificate_id = facts.certificate_id(partitions)
    assert certificate_id == facts.certificate_id(partitions)  # a replay makes the same id
    assert kafka_places(certificate_id.encode(), partitions) == kafka_places(learner.encode(), partitions)
    parsed = uuid.UUID(certificate_id)
    assert (parsed.version, str(parsed)) == (5, certificate_id)
    name = orjson.dumps([learner, course, "batch", "template", "name", ""]).decode()
    assert certificate_id[:32] == str(uuid.uuid5(CERTIFICATE_NAMESPACE, name))[:32]


def test_one_partition_leaves_the_uuid5_as_it_is() -> None:
    facts = CertifiedFacts("user001", "course", "batch", "template", "name")
    name = '["user001","course","batch","template","name",""]'
    assert facts.certificate_id(1) == str(uuid.uuid5(CERTIFICATE_NAMESPACE, name))


def test_a_remembered_id_is_the_one_computed_for_the_same_facts_and_partition_count() -> None:
    facts = CertifiedFacts("user001", "course", "batch", "template", "name")
    remembered = {partitions: facts.certificate_id(partitions) for partitions in (8, 32, 8, 32)}
    _placed_certificate_id.cache_clear()
    for partitions, certificate_id in remembered.items():
        assert facts.certificate_id(partitions) == certificate_id
        assert kafka_places(certificate_id.encode(), partitions) == kafka_places(b"user001", partitions)
