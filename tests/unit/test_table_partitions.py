"""certflow's table writes while a new changelog's partition count is not yet in the
consumer's metadata, and still refuses a real mismatch (certflow.faust_fixes.tables)."""

from __future__ import annotations

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
