"""How certflow reaches Kafka: the bootstrap servers and the client's security (TLS,
SASL), in one object built from the settings, and the one place every aiokafka client
certflow makes is constructed.

A real cluster (Strimzi, a managed Kafka) takes TLS and SASL or mutual-TLS
credentials; a client that connected without them would not fail loudly, it would
retry a listener that never answers it. So no module builds an aiokafka client itself
(``tests/unit/test_kafka_client.py`` checks it): each one comes from :func:`admin_client`,
:func:`producer`, :func:`consumer` or :func:`cluster_client` with a
:class:`KafkaConnection`, and the Faust app gets the same credentials from
:meth:`KafkaConnection.faust_credentials`.

Where a function takes ``KafkaConnection | str``, a plain ``kafka://host:port`` string
means an unauthenticated PLAINTEXT broker (:meth:`KafkaConnection.of`): the local
brokers of the demo, the benchmark and the tests. Whatever follows the settings passes
``settings.kafka`` (the unit test also checks no module reads ``settings.broker``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)

#: Errors a broker answers a handshake with when the credentials are wrong: retrying
#: cannot help, so they are reported at once (:class:`KafkaAccessRefused`).
AUTHENTICATION_ERRORS = (
    SaslAuthenticationFailed, AuthenticationFailedError, AuthenticationMethodNotSupported,
    UnsupportedSaslMechanismError, IllegalSaslStateError,
)
#: How long :func:`access_refusal` waits for one broker's answer.
PROBE_TIMEOUT_MS = 5000


class KafkaAccessRefused(RuntimeError):
    """The brokers refused certflow's credentials or TLS handshake.

    aiokafka reports a refused login as "Unable to bootstrap", the same words as a
    broker that is not up yet, and certflow retries those; a wrong password is a
    configuration error, so it is told apart (:func:`access_refusal`) and raised
    with what to fix instead of being retried until a time-out.
    """


def bootstrap_servers(broker_url: str) -> list[str]:
    """``kafka://a:9092;kafka://b:9092`` (Faust's form) → ``["a:9092", "b:9092"]``."""
    servers = []
    for entry in broker_url.replace(",", ";").split(";"):
        part = entry.strip()
        if part:
            servers.append(part.split("://", 1)[-1].rstrip("/"))
    return servers


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are (``url``, Faust's ``kafka://host:port;…`` form) and how a
    client proves who it is: ``security_protocol`` as Kafka names it, SASL's mechanism
    and login, TLS's CA (None: the system's CAs, as for a managed Kafka with a public
    certificate) and the client certificate and key of mutual TLS (Strimzi's
    ``tls`` users).

    Inconsistent combinations are refused when it is made, naming the settings to
    fix (``CERTFLOW_KAFKA_…``): a SASL protocol without a login, a login or TLS files
    that the protocol would silently ignore.
    """

    url: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def __post_init__(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"CERTFLOW_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"not {self.security_protocol!r}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"CERTFLOW_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                f"not {self.sasl_mechanism!r}"
            )
        if self.uses_sasl:
            missing = [
                name for name, value in (
                    ("CERTFLOW_KAFKA_SASL_USERNAME", self.sasl_username),
                    ("CERTFLOW_KAFKA_SASL_PASSWORD", self.sasl_password),
                ) if not value
            ]
            if missing:
                raise ValueError(
                    f"CERTFLOW_KAFKA_SECURITY_PROTOCOL={self.security_protocol} logs in with SASL "
                    f"{self.sasl_mechanism}: set {' and '.join(missing)}"
                )
        elif self.sasl_username or self.sasl_password:
            raise ValueError(
                "a SASL login (CERTFLOW_KAFKA_SASL_USERNAME/PASSWORD) is set but "
                f"CERTFLOW_KAFKA_SECURITY_PROTOCOL={self.security_protocol} would not send it: "
                "use SASL_SSL (or SASL_PLAINTEXT)"
            )
        tls_files = [
            name for name, value in (
                ("CERTFLOW_KAFKA_SSL_CAFILE", self.ssl_cafile),
                ("CERTFLOW_KAFKA_SSL_CERTFILE", self.ssl_certfile),
                ("CERTFLOW_KAFKA_SSL_KEYFILE", self.ssl_keyfile),
            ) if value is not None
        ]
        if tls_files and not self.uses_tls:
            raise ValueError(
                f"{', '.join(tls_files)} set but CERTFLOW_KAFKA_SECURITY_PROTOCOL={self.security_protocol} "
                "does not use TLS: use SSL or SASL_SSL"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("CERTFLOW_KAFKA_SSL_KEYFILE needs CERTFLOW_KAFKA_SSL_CERTFILE (the client certificate)")

    @classmethod
    def of(cls, kafka: KafkaConnection | str) -> KafkaConnection:
        """``kafka`` itself, or a plain broker URL as an unauthenticated PLAINTEXT connection."""
        return kafka if isinstance(kafka, KafkaConnection) else cls(kafka)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def bootstrap_servers(self) -> list[str]:
        return bootstrap_servers(self.url)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client (one, shared), or None without TLS.

        Hostnames are checked (aiokafka's helper does not let them be skipped): a
        Strimzi listener's certificate names its bootstrap and broker services.
        """
        if not self.uses_tls:
            return None
        for name, path in (
            ("CERTFLOW_KAFKA_SSL_CAFILE", self.ssl_cafile),
            ("CERTFLOW_KAFKA_SSL_CERTFILE", self.ssl_certfile),
            ("CERTFLOW_KAFKA_SSL_KEYFILE", self.ssl_keyfile),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        return create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile)

    def security_options(self) -> dict[str, Any]:
        """aiokafka's keyword arguments for this connection's security, shared by its
        clients and connections (:func:`access_refusal`)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context
        if self.uses_sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return options

    def client_options(self) -> dict[str, Any]:
        """Every aiokafka client's keyword arguments: the bootstrap servers and security."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.security_options()}

    def faust_credentials(self) -> CredentialsT | None:
        """The same security as Faust's ``broker_credentials`` (Faust turns it back into
        aiokafka's arguments for its consumer, producer and topic creation), or None
        for PLAINTEXT."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username, password=self.sasl_password,
                ssl_context=self.ssl_context, mechanism=self.sasl_mechanism,
            )
        if self.uses_tls:
            return faust.SSLCredentials(self.ssl_context)
        return None

    def describe(self) -> str:
        """Who connects how, for error messages (never the password)."""
        login = f" as {self.sasl_username!r} with SASL {self.sasl_mechanism}" if self.uses_sasl else ""
        return f"{self.security_protocol}{login} to {', '.join(self.bootstrap_servers)}"


# -- the clients ----------------------------------------------------------------------


def admin_client(kafka: KafkaConnection | str, **options: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**KafkaConnection.of(kafka).client_options(), **options)


def producer(kafka: KafkaConnection | str, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**KafkaConnection.of(kafka).client_options(), **options)


def consumer(kafka: KafkaConnection | str, *topics: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **KafkaConnection.of(kafka).client_options(), **options)


def cluster_client(kafka: KafkaConnection | str, **options: Any) -> AIOKafkaClient:
    """aiokafka's low-level client (cluster metadata), for the local cluster's helpers."""
    return AIOKafkaClient(**KafkaConnection.of(kafka).client_options(), **options)


Client: TypeAlias = AIOKafkaAdminClient | AIOKafkaProducer | AIOKafkaConsumer


async def start(client: Client, kafka: KafkaConnection | str) -> None:
    """``client.start()``, raising :class:`KafkaAccessRefused` (not aiokafka's "Unable to
    bootstrap") when the brokers refuse the connection's credentials or TLS.

    A client that failed to start is closed, except after a bootstrap nobody answered,
    which the caller may retry with the same client (:func:`certflow.kafka.ensure_topics`).
    """
    try:
        await client.start()
    except KafkaConnectionError:
        reason = await access_refusal(kafka)
        if reason is None:
            raise
        await close(client)
        raise KafkaAccessRefused(reason) from None
    except BaseException:
        # e.g. an idempotent producer whose user may write nowhere (authorization)
        await close(client)
        raise


async def close(client: Client) -> None:
    """Stop ``client``, whichever kind it is (the admin client's method is ``close``)."""
    if isinstance(client, AIOKafkaAdminClient):
        await client.close()
    else:
        await client.stop()


async def access_refusal(kafka: KafkaConnection | str) -> str | None:
    """Why the brokers refuse ``kafka``, if one of them answers with a refusal: a failed
    SASL login, a mechanism the listener does not offer, a failed TLS handshake, or a
    listener that drops a client speaking the wrong protocol. None if no broker
    answered at all (still starting, unreachable: worth retrying) or one accepted.
    """
    connection = KafkaConnection.of(kafka)
    for server in connection.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            conn = await create_conn(
                host, int(port), request_timeout_ms=PROBE_TIMEOUT_MS, **connection.security_options()
            )
        except AUTHENTICATION_ERRORS as exc:
            return (
                f"Kafka at {server} refused {connection.describe()}: {exc}. "
                "Check CERTFLOW_KAFKA_SASL_USERNAME, CERTFLOW_KAFKA_SASL_PASSWORD and "
                "CERTFLOW_KAFKA_SASL_MECHANISM."
            )
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            continue  # the connection ended mid-handshake: a broker going away, not a refusal
        except ssl.SSLError as exc:
            return (
                f"TLS with Kafka at {server} failed ({connection.describe()}): {exc}. Check "
                "CERTFLOW_KAFKA_SECURITY_PROTOCOL and the CERTFLOW_KAFKA_SSL_* files."
            )
        except ConnectionResetError:
            if not connection.uses_tls:
                continue
            # What a listener without TLS does with a TLS handshake: its first bytes
            # read as an impossible request size.
            return (
                f"Kafka at {server} dropped the TLS handshake ({connection.describe()}): its "
                "listener probably does not speak TLS; check CERTFLOW_KAFKA_SECURITY_PROTOCOL."
            )
        except (TimeoutError, OSError, KafkaError):
            continue
        if connection.uses_sasl:
            conn.close()
            return None  # logged in: whatever failed, it was not the credentials
        try:
            # A SASL listener answers ApiVersions to anyone, then drops a client that
            # asks for anything else without logging in.
            await conn.send(MetadataRequest([]))
        except KafkaConnectionError:
            return (
                f"Kafka at {server} dropped the connection after the handshake "
                f"({connection.describe()}): its listener probably wants another "
                "CERTFLOW_KAFKA_SECURITY_PROTOCOL."
            )
        except (TimeoutError, KafkaError):
            continue
        finally:
            conn.close()
        return None
    return None
