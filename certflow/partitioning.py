"""Where Kafka's default partitioner puts a key, and how to choose a key it puts
in a given partition.

A pure function of the key and the partition count (murmur2, the same in aiokafka
and the Java client): certflow computes it to address work to the partition that
holds a learner's tables, and to choose certificate ids that fall in their
learner's partition (:mod:`certflow.credentials.identity`).
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

#: Kafka's murmur2 constants (``org.apache.kafka.common.utils.Utils.murmur2``).
_SEED, _M, _MASK = 0x9747B28C, 0x5BD1E995, 0xFFFFFFFF
#: A UUID's text: 36 bytes, nine of murmur2's 4-byte blocks, the last of them its
#: last four hexadecimal digits.
_ID_LENGTH, _FIXED = 36, 32


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, the same
    in aiokafka and the Java client)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _mix(h: int, block: int) -> int:
    """One 4-byte block of murmur2 mixed into the state ``h``."""
    k = (block * _M) & _MASK
    k ^= k >> 24
    k = (k * _M) & _MASK
    return ((h * _M) & _MASK) ^ k


def placed_key(identifier: str, partition: int, partitions: int) -> str:
    """``identifier`` (a UUID's text, or any key of 36 ASCII bytes ending in four
    hexadecimal digits) with its last four hexadecimal digits counted up,
    from their own value and wrapping, to the first that puts it in ``partition``.

    murmur2 reads its input in 4-byte blocks, so the state after the first 32
    bytes is computed once and each candidate costs one block and the final mix
    (about a microsecond; aiokafka's whole murmur2 is about 14): a search takes
    ``partitions`` candidates on average. With at most 1,024 partitions (the
    setting's bound), the chance that none of the 65,536 fits is below 1e-28.
    """
    if partitions == 1:
        return identifier
    fixed = identifier[:_FIXED]
    h = _SEED ^ _ID_LENGTH
    for start in range(0, _FIXED, 4):
        h = _mix(h, int.from_bytes(fixed[start : start + 4].encode(), "little"))
    first = int(identifier[_FIXED:], 16)
    for step in range(0x10000):
        digits = f"{(first + step) & 0xFFFF:04x}"
        hashed = _mix(h, int.from_bytes(digits.encode(), "little"))
        hashed ^= hashed >> 13
        hashed = (hashed * _M) & _MASK
        hashed ^= hashed >> 15
        if (hashed & 0x7FFFFFFF) % partitions == partition:
            return fixed + digits
    raise ValueError(f"no id like {identifier} falls in partition {partition} of {partitions}")
