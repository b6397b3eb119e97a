"""Kafka client security: the settings, the one place clients are built, TLS contexts
that really handshake, Faust's credentials, and that no client bypasses them.

The SASL login against a real Kafka is ``tests/integration/test_kafka_security.py``;
here TLS is checked against a local TLS server (a CA, a server certificate for
127.0.0.1 and a client certificate made in the test, ``tests/pki.py``), without Kafka;
the integration test runs a Kafka TLS listener with the same certificates.
"""

from __future__ import annotations

import ast
import asyncio
import io
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from certflow import kafka_client
from certflow.kafka_client import SASL_MECHANISMS, SECURITY_PROTOCOLS, KafkaConnection, access_refusal
from certflow.settings import SaslMechanism, SecurityProtocol, Settings
from tests.pki import CA_NAME, CLIENT_NAME, Pki, make_pki

CERTFLOW = Path(__file__).parents[2] / "certflow"
KAFKA_ENV = (
    "CERTFLOW_KAFKA_SECURITY_PROTOCOL", "CERTFLOW_KAFKA_SASL_MECHANISM", "CERTFLOW_KAFKA_SASL_USERNAME",
    "CERTFLOW_KAFKA_SASL_PASSWORD", "CERTFLOW_KAFKA_SSL_CAFILE", "CERTFLOW_KAFKA_SSL_CERTFILE",
    "CERTFLOW_KAFKA_SSL_KEYFILE",
)


@pytest.fixture(autouse=True)
def no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own Kafka settings must not leak into these tests."""
    for name in KAFKA_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA like Strimzi's cluster CA, with a broker and a client certificate (tests/pki.py)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[tuple[int, list[str]]]:
    """A TLS server on 127.0.0.1 that demands a client certificate from the test CA
    (as a Strimzi listener with ``tls`` users does); it records each client's CN."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    clients: list[str] = []
    loop = asyncio.new_event_loop()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        clients.extend(value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName")
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(serve, "127.0.0.1", 0, ssl=context))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port, clients
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


async def _handshake(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    try:
        return await reader.read(5)
    finally:
        writer.close()


# -- settings ------------------------------------------------------------------------


def test_the_settings_literals_are_kafkas_names_as_the_client_module_has_them() -> None:
    from typing import get_args

    assert get_args(SecurityProtocol) == SECURITY_PROTOCOLS
    assert get_args(SaslMechanism) == SASL_MECHANISMS


def test_kafka_security_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("CERTFLOW_BROKER", "kafka://kafka-0:9093;kafka://kafka-1:9093")
    monkeypatch.setenv("CERTFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CERTFLOW_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("CERTFLOW_KAFKA_SASL_USERNAME", "certflow-worker")
    monkeypatch.setenv("CERTFLOW_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("CERTFLOW_KAFKA_SSL_CAFILE", str(pki.ca))
    kafka = Settings().kafka
    assert kafka.bootstrap_servers == ["kafka-0:9093", "kafka-1:9093"]
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username, kafka.sasl_password) == (
        "SASL_SSL", "SCRAM-SHA-256", "certflow-worker", "s3cret",
    )
    assert kafka.ssl_cafile == pki.ca
    assert "s3cret" not in repr(kafka)
    options = kafka.client_options()
    assert options["bootstrap_servers"] == ["kafka-0:9093", "kafka-1:9093"]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_plain_username"] == "certflow-worker" and options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_plaintext_is_the_default_and_sends_no_login() -> None:
    kafka = Settings().kafka
    assert kafka.client_options() == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT"}
    assert kafka.faust_credentials() is None


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"CERTFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
         "set CERTFLOW_KAFKA_SASL_USERNAME and CERTFLOW_KAFKA_SASL_PASSWORD"),
        ({"CERTFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CERTFLOW_KAFKA_SASL_USERNAME": "u"},
         "set CERTFLOW_KAFKA_SASL_PASSWORD"),
        ({"CERTFLOW_KAFKA_SASL_USERNAME": "u", "CERTFLOW_KAFKA_SASL_PASSWORD": "p"},
         "CERTFLOW_KAFKA_SECURITY_PROTOCOL=PLAINTEXT would not send it"),
        ({"CERTFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "CERTFLOW_KAFKA_SASL_PASSWORD": "p"},
         "would not send it"),
        ({"CERTFLOW_KAFKA_SSL_CAFILE": "/etc/ca.crt"}, "CERTFLOW_KAFKA_SSL_CAFILE set but"),
        ({"CERTFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "CERTFLOW_KAFKA_SSL_KEYFILE": "/etc/user.key"},
         "CERTFLOW_KAFKA_SSL_KEYFILE needs CERTFLOW_KAFKA_SSL_CERTFILE"),
        ({"CERTFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka_security_protocol\n  Input should be 'PLAINTEXT'"),
        ({"CERTFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CERTFLOW_KAFKA_SASL_MECHANISM": "GSSAPI",
          "CERTFLOW_KAFKA_SASL_USERNAME": "u", "CERTFLOW_KAFKA_SASL_PASSWORD": "p"},
         "kafka_sasl_mechanism\n  Input should be 'PLAIN'"),
    ],
)
def test_security_settings_that_do_not_fit_together_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        Settings()


def test_an_empty_file_setting_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a local broker's settings (LocalBroker.client_settings) rely on to override the environment."""
    monkeypatch.setenv("CERTFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("CERTFLOW_KAFKA_SSL_CAFILE", "")
    assert Settings().kafka_ssl_cafile is None


def test_a_local_brokers_settings_override_a_real_clusters_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from certflow.local import LocalBroker

    for name, value in {
        "CERTFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CERTFLOW_KAFKA_SASL_USERNAME": "u",
        "CERTFLOW_KAFKA_SASL_PASSWORD": "p", "CERTFLOW_KAFKA_SSL_CAFILE": "/etc/ca.crt",
    }.items():
        monkeypatch.setenv(name, value)
    broker = LocalBroker(tmp_path, port=19092)  # made, not started
    for name, value in broker.client_settings().items():
        monkeypatch.setenv(name, value)
    kafka = Settings().kafka
    assert (kafka.url, kafka.security_protocol, kafka.sasl_username, kafka.ssl_cafile) == (
        broker.url, "PLAINTEXT", "", None,
    )


# -- TLS -----------------------------------------------------------------------------


def test_the_ca_file_makes_a_context_that_trusts_that_ca_only_and_checks_host_names(pki: Pki) -> None:
    context = KafkaConnection("kafka://b:9093", security_protocol="SSL", ssl_cafile=pki.ca).ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(rdn[0] for rdn in ca["subject"]) for ca in context.get_ca_certs()]
    assert subjects == [{"commonName": CA_NAME}]


async def test_mutual_tls_presents_the_client_certificate_to_a_server_of_that_ca(
    pki: Pki, tls_server: tuple[int, list[str]],
) -> None:
    port, clients = tls_server
    kafka = KafkaConnection(
        f"kafka://127.0.0.1:{port}", security_protocol="SSL",
        ssl_cafile=pki.ca, ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key,
    )
    assert kafka.ssl_context is not None
    assert await _handshake(port, kafka.ssl_context) == b"hello"
    assert clients == [CLIENT_NAME]


async def test_a_server_the_ca_did_not_sign_is_refused_with_a_tls_reason(
    pki: Pki, tls_server: tuple[int, list[str]],
) -> None:
    """The system's CAs (no CA file) do not know the test CA: the handshake fails, and
    certflow says so at once instead of retrying a broker that is "not up"."""
    port, _ = tls_server
    kafka = KafkaConnection(f"kafka://127.0.0.1:{port}", security_protocol="SSL")
    assert kafka.ssl_context is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(port, kafka.ssl_context)
    reason = await access_refusal(kafka)
    assert reason is not None
    assert reason.startswith(f"TLS with Kafka at 127.0.0.1:{port} failed")
    assert "CERTFLOW_KAFKA_SSL_" in reason


def test_a_key_that_does_not_match_the_certificate_is_refused(pki: Pki) -> None:
    kafka = KafkaConnection(
        "kafka://b:9093", security_protocol="SSL",
        ssl_cafile=pki.ca, ssl_certfile=pki.client_cert, ssl_keyfile=pki.other_key,
    )
    with pytest.raises(ssl.SSLError):
        _ = kafka.ssl_context


def test_a_missing_tls_file_is_named(tmp_path: Path) -> None:
    kafka = KafkaConnection("kafka://b:9093", security_protocol="SSL", ssl_cafile=tmp_path / "nope.crt")
    with pytest.raises(ValueError, match=r"CERTFLOW_KAFKA_SSL_CAFILE=.*nope\.crt: no such file"):
        _ = kafka.ssl_context


# -- Faust ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", SECURITY_PROTOCOLS)
def test_faust_gets_exactly_the_security_certflows_own_clients_get(protocol: str, pki: Pki) -> None:
    """Faust turns ``broker_credentials`` back into aiokafka's arguments: they must be
    the ones every other client of certflow's is built with."""
    sasl = protocol.startswith("SASL")
    tls = protocol.endswith("SSL")
    kafka = KafkaConnection(
        "kafka://b:9093", security_protocol=protocol,  # type: ignore[arg-type]  # one of SECURITY_PROTOCOLS
        sasl_mechanism="SCRAM-SHA-512", sasl_username="certflow-worker" if sasl else "",
        sasl_password="s3cret" if sasl else "",
        ssl_cafile=pki.ca if tls else None,
        ssl_certfile=pki.client_cert if protocol == "SSL" else None,
        ssl_keyfile=pki.client_key if protocol == "SSL" else None,
    )
    faust_options = dict(credentials_to_aiokafka_auth(kafka.faust_credentials()))
    if not sasl and not tls:
        assert faust_options == {"security_protocol": "PLAINTEXT"} == kafka.security_options()
        return
    if not tls:
        faust_options.pop("ssl_context")  # Faust passes None for "no TLS"; certflow leaves it out
    assert faust_options == kafka.security_options()
    if tls:
        assert faust_options["ssl_context"] is kafka.ssl_context


def test_the_faust_app_is_built_with_the_settings_credentials(tmp_path: Path) -> None:
    from certflow.app import create_app

    settings = Settings(
        data_dir=tmp_path, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="certflow-worker", kafka_sasl_password="s3cret",
    )
    credentials = create_app(settings).conf.broker_credentials
    assert credentials is not None
    options = credentials_to_aiokafka_auth(credentials)
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_PLAINTEXT", "PLAIN")
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("certflow-worker", "s3cret")


# -- every client goes through certflow.kafka_client ---------------------------------

AIOKAFKA_CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "AIOKafkaClient"}


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(CERTFLOW.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def test_no_module_but_kafka_client_builds_an_aiokafka_client() -> None:
    """A client built anywhere else would connect without the TLS and SASL settings."""
    builders = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in AIOKAFKA_CLIENTS:
                    builders.append(f"{path.relative_to(CERTFLOW.parent)}:{node.lineno} {name}")
    assert builders and all(entry.startswith("certflow/kafka_client.py:") for entry in builders), builders


def test_no_module_reads_the_bare_broker_url_from_the_settings() -> None:
    """``settings.broker`` is the address without the security: clients take ``settings.kafka``."""
    bare = [
        f"{path.relative_to(CERTFLOW.parent)}:{node.lineno}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "broker"
        and ast.unparse(node.value).split(".")[-1] == "settings"
    ]
    assert bare == []


# -- refusals ------------------------------------------------------------------------


async def test_nobody_listening_is_no_refusal_so_a_starting_broker_is_waited_for() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert await access_refusal(f"kafka://127.0.0.1:{port}") is None


def test_a_refused_login_is_one_line_from_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import certflow.kafka
    from certflow.cli import main

    async def refuse(*args: object, **kwargs: object) -> int:
        raise kafka_client.KafkaAccessRefused("Kafka at b:9093 refused SASL_SSL as 'u'")

    monkeypatch.setattr(certflow.kafka, "produce", refuse)
    monkeypatch.setattr("sys.argv", ["certflow", "send", "some.topic"])
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'{"a": 1}')))
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip() == "Error: Kafka at b:9093 refused SASL_SSL as 'u'"
