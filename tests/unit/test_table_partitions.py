"""certflow's table writes while a new changelog's partition count is not yet in the
consumer's metadata, and still refuses a real mismatch (certflow.faust_fixes.tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faust.exceptions import PartitionsMismatch

from certflow.app import create_app
from certflow.settings import Settings


@pytest.mark.parametrize(("changelog", "refused"), [(0, False), (4, False), (None, False), (3, True)])
def test_a_changelog_with_no_known_partitions_is_checked_again_later(
    changelog: int | None, refused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings(partitions=4))
    table = app.flows.registry.access_codes
    counts: dict[str, Any] = {"certificate.issued": 4, table.changelog_topic_name: changelog}
    monkeypatch.setattr(type(app.consumer), "topic_partitions", lambda self, topic: counts.get(topic))

    if refused:
        with pytest.raises(PartitionsMismatch):
            table._verify_source_topic_partitions("certificate.issued")
        return
    table._verify_source_topic_partitions("certificate.issued")
    # Verified only once the count was known: a 0 is looked at again at the next write.
    verified = "certificate.issued" in table._verified_source_topics_for_partitions
    assert verified is (changelog != 0)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_table_value_is_read_with_one_store_lookup(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust's table asks its store whether a key is there, then reads it; certflow's
    reads it once, and a missing key is still None to ``get``."""
    app = create_app(Settings(partitions=4, store=store, data_dir=tmp_path))
    table = app.flows.registry.certificates
    stored = {"record": {"id": "certificate-1"}, "revocation": None}
    if store == "rocksdb://":
        table.data._db_for_partition(2).put(b"certificate-1", table.data._encode_value(stored))
    else:
        table.data[b"certificate-1"] = stored
    lookups: list[str] = []
    store_type = type(table.data)
    for name in ("__contains__", "__getitem__"):
        looked_up = getattr(store_type, name)
        monkeypatch.setattr(
            store_type, name, lambda self, key, _name=name, _look=looked_up: (lookups.append(_name), _look(self, key))[1]
        )

    assert table.get(b"certificate-1") == stored
    assert lookups == ["__getitem__"]
    assert table.get(b"certificate-2") is None
    assert lookups == ["__getitem__", "__getitem__"]
    with pytest.raises(KeyError):
        table[b"certificate-2"]
