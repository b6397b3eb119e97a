"""Settings: every one documented, read from CERTFLOW_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from certflow.settings import Settings
from certflow.topics import TopicNames

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented_in_code_and_readme(name: str) -> None:
    assert Settings.model_fields[name].description
    assert f"`CERTFLOW_{name.upper()}`" in README


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTFLOW_PARTITIONS", "12")
    monkeypatch.setenv("CERTFLOW_TEMPLATE_ALLOWED_HOSTS", "a.example.org, *.cdn.example.org")
    monkeypatch.setenv("CERTFLOW_TEMPLATE_REWRITES", '{"https://old/": "https://new/"}')
    monkeypatch.setenv("CERTFLOW_LOG_LEVEL", "WARNING")
    settings = Settings()
    assert settings.partitions == 12
    assert settings.template_allowed_hosts == ["a.example.org", "*.cdn.example.org"]
    assert settings.template_rewrites == {"https://old/": "https://new/"}
    assert settings.log_level == "warn"


def test_a_json_list_of_hosts_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTFLOW_TEMPLATE_ALLOWED_HOSTS", '["a.example.org"]')
    assert Settings().template_allowed_hosts == ["a.example.org"]


def test_topic_names_take_sunbirds_environment_prefix() -> None:
    assert TopicNames("sunbirddev").generate_request == "sunbirddev.generate.certificate.request"
    assert TopicNames("").certificate_issued == "certificate.issued"
    assert len(set(TopicNames("x").all())) == len(vars(TopicNames("x")))


@pytest.mark.parametrize(("compression", "faust_value"), [("none", None), ("zstd", "zstd"), ("lz4", "lz4")])
def test_producer_compression_and_rebalance_timeout_reach_faust(compression: str, faust_value: str | None) -> None:
    from certflow.app import create_app

    app = create_app(Settings(producer_compression=compression, rebalance_timeout_seconds=12))
    assert app.conf.producer_compression_type == faust_value
    assert app.conf.broker_rebalance_timeout == 12
