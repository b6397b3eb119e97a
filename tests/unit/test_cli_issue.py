"""`certflow issue ROSTER.csv`: a roster validated line by line, sent as generate requests."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from certflow.cli import cli

ROSTER = (
    "name,id,email\n"
    "प्रिया शर्मा,learner-1,priya@example.org\n"
    "Asha Rao,learner-2,not-an-address\n"
    ",learner-3,\n"
    "முருகன் செல்வம்,learner-4,\n"
)
OPTIONS = ["--template", "course-completion.svg", "--course-name", "Data Science",
           "--issuer-name", "NCERT", "--issuer-url", "https://ncert.nic.in/"]


@pytest.fixture
def produced(monkeypatch) -> list[tuple[str, list[tuple[bytes | None, bytes | None]]]]:
    sent: list[tuple[str, list[tuple[bytes | None, bytes | None]]]] = []

    async def produce(broker: str, topic: str, events) -> int:  # type: ignore[no-untyped-def]
        sent.append((topic, list(events)))
        return len(sent[-1][1])

    monkeypatch.setattr("certflow.kafka.produce", produce)
    return sent


def test_issue_sends_valid_lines_lists_rejected_ones_and_exits_1(tmp_path: Path, produced) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    result = CliRunner().invoke(cli, ["issue", str(roster), *OPTIONS, "--batch", "b1"])
    assert result.exit_code == 1, result.output
    assert "line 3:" in result.output and "line 4:" in result.output
    assert "2 accepted, 2 rejected" in result.output
    [(topic, events)] = produced
    assert topic == "generate.certificate.request"
    assert [key for key, _ in events] == [b"learner-1", b"learner-4"]
    edata = orjson.loads(events[0][1])["edata"]
    assert edata["data"][0]["recipientEmail"] == "priya@example.org"
    assert edata["courseName"] == "Data Science" and edata["related"]["batchId"] == "b1"


def test_issue_of_a_clean_roster_exits_0_and_a_dry_run_sends_nothing(tmp_path: Path, produced) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("name,id\nAsha Rao,learner-2\n", encoding="utf-8")
    assert CliRunner().invoke(cli, ["issue", str(roster), *OPTIONS, "--dry-run"]).exit_code == 0
    assert produced == []
    result = CliRunner().invoke(cli, ["issue", str(roster), *OPTIONS])
    assert result.exit_code == 0, result.output
    assert "1 accepted, 0 rejected; sent 1" in result.output


def test_issue_refuses_a_roster_without_name_and_id_columns(tmp_path: Path, produced) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("who,what\nx,y\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["issue", str(roster), *OPTIONS])
    assert result.exit_code == 1 and produced == []
