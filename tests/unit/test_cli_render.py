"""`certflow render`: template authors preview a template offline, exactly as a worker fills it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from lxml import etree

from certflow.cli import cli
from certflow.settings import Settings

TEMPLATE = Settings().template_root / "course-completion.svg"


def test_render_fills_a_template_from_a_generate_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({
        "edata": {
            "name": "Course Completion Certificate",
            "courseName": "डेटा विज्ञान",
            "data": [{"recipientName": "प्रिया शर्मा", "recipientId": "learner-1"}],
            "issuer": {"name": "NCERT", "url": "https://ncert.nic.in/"},
            "criteria": {"narrative": "Completed"},
            "related": {"batchId": "b1", "courseId": "c1"},
        }
    }, ensure_ascii=False), encoding="utf-8")
    out, record = tmp_path / "out.svg", tmp_path / "out.json"

    result = CliRunner().invoke(cli, ["render", str(TEMPLATE), str(event), "-o", str(out), "--json-output", str(record)])

    assert result.exit_code == 0, result.output
    root = etree.fromstring(out.read_bytes())
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "प्रिया शर्मा" in texts
    assert json.loads(record.read_text())["recipient"]["id"] == "learner-1"


def test_render_explains_an_invalid_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"edata": {"name": ""}}')
    result = CliRunner().invoke(cli, ["render", str(TEMPLATE), str(event), "-o", str(tmp_path / "x.svg")])
    assert result.exit_code != 0
    assert "MANDATORY_PARAMETER_MISSING" in result.output


def test_every_command_is_documented() -> None:
    runner = CliRunner()
    overview = runner.invoke(cli, ["--help"]).output
    for command in ("broker", "topics", "worker", "send", "tail", "render", "issue", "export"):
        assert command in overview
        help_text = runner.invoke(cli, [command, "--help"]).output
        assert "Usage:" in help_text and len(help_text.splitlines()) > 4


def _event(tmp_path: Path) -> Path:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({
        "name": "Merit Certificate",
        "courseName": "Data Science",
        "data": [{"recipientName": "प्रिया शर्मा", "recipientId": "learner-1"}],
        "issuer": {"name": "NCERT", "url": "https://ncert.nic.in/"},
        "criteria": {"narrative": "Completed"},
        "related": {"batchId": "b1", "courseId": "c1"},
    }, ensure_ascii=False), encoding="utf-8")
    return event


def test_render_writes_the_format_the_extension_names(tmp_path: Path) -> None:
    import io
    import shutil
    import subprocess

    from PIL import Image

    event = _event(tmp_path)
    pdf, png = tmp_path / "out.pdf", tmp_path / "OUT.PNG"
    for out in (pdf, png):
        result = CliRunner().invoke(cli, ["render", str(TEMPLATE), str(event), "-o", str(out)])
        assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF")
    assert Image.open(io.BytesIO(png.read_bytes())).format == "PNG"
    if shutil.which("pdftotext"):  # the worker's text layer: the name is searchable
        text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"],
                              capture_output=True, text=True, check=True).stdout
        assert "प्रिया शर्मा" in " ".join(text.split())


def test_render_refuses_an_unknown_extension(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["render", str(TEMPLATE), str(_event(tmp_path)), "-o", str(tmp_path / "x.jpg")])
    assert result.exit_code == 2 and ".svg, .pdf or .png" in result.output
