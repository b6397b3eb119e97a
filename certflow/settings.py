"""Every knob certflow has, in one documented class.

Values come from environment variables prefixed ``CERTFLOW_`` (``CERTFLOW_BROKER``,
``CERTFLOW_PARTITIONS`` …), which is how a Kubernetes ConfigMap hands them to a pod.
Lists take either JSON (``["a","b"]``) or a comma-separated string; mappings take JSON.
Nothing else in the code base reads the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from certflow.topics import TopicNames

if TYPE_CHECKING:
    from certflow.kafka_client import KafkaConnection

#: Kafka's names, as in ``certflow.kafka_client`` (repeated here so that importing
#: this module does not import aiokafka; a unit test keeps the two equal).
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """certflow's configuration. Every field maps to ``CERTFLOW_<FIELD NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CERTFLOW_", extra="ignore")

    # --- Kafka -----------------------------------------------------------------
    broker: str = Field(
        "kafka://127.0.0.1:9092",
        description="Kafka bootstrap servers as Faust URLs; ';' separates several.",
    )
    app_id: str = Field(
        "certflow",
        description="Faust application id: the consumer group and the prefix of "
        "internal changelog topics. Workers with the same id share the work.",
    )
    topic_prefix: str = Field(
        "",
        description="Environment prefix for topic names (Sunbird's `{env}`), e.g. "
        "`sunbirddev` gives `sunbirddev.generate.certificate.request`. Empty: none.",
    )
    partitions: int = Field(
        8,
        ge=1,
        le=1024,
        description="Partition count of every certflow topic (at most 1,024). It bounds "
        "how many workers share the work, and all learner-keyed topics must agree on it; "
        "certificate ids are chosen to fall in their learner's partition of this count.",
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="Replicas of each partition of the topics certflow creates (its own "
        "and Faust's changelogs). Unset: 3, or the cluster's size when it has fewer brokers.",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="`min.insync.replicas` of the topics certflow creates: replicas that "
        "must have a write before it is acknowledged (producers use acks=all). Unset: 2 "
        "with 3 replicas, else one less than the replicas (at least 1).",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="How every Kafka client of certflow (the worker's, `certflow topics`, "
        "`send`, `tail`, `load`, `issue`) connects: `PLAINTEXT`, `SSL` (TLS, with a client "
        "certificate for mutual TLS), `SASL_PLAINTEXT` or `SASL_SSL` (a SASL login, over TLS). "
        "A real cluster (Strimzi's TLS listener) wants `SSL` or `SASL_SSL`.",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512",
        description="SASL mechanism of the login with a SASL protocol: `SCRAM-SHA-512` "
        "(Strimzi's `scram-sha-512` users), `SCRAM-SHA-256` or `PLAIN` (the password "
        "itself is sent: only over TLS).",
    )
    kafka_sasl_username: str = Field(
        "", description="SASL user name; required with `SASL_PLAINTEXT` and `SASL_SSL`, refused with the others."
    )
    kafka_sasl_password: str = Field(
        "",
        description="SASL password of `kafka_sasl_username` (from a Kubernetes Secret: "
        "Strimzi's KafkaUser Secret has it under `password`).",
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA that signed the brokers' certificates, with `SSL` "
        "or `SASL_SSL` (Strimzi: the `<cluster>-cluster-ca-cert` Secret's `ca.crt`). "
        "Unset: the system's CAs. Broker host names are always checked.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None,
        description="PEM client certificate for mutual TLS (Strimzi's `tls` users: "
        "`user.crt` of the KafkaUser Secret), with `SSL` or `SASL_SSL`.",
    )
    kafka_ssl_keyfile: Path | None = Field(
        None,
        description="PEM private key of `kafka_ssl_certfile` (Strimzi: `user.key`); "
        "unset, the key is read from the certificate file.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="Faust processing guarantee."
    )
    store: str = Field(
        "rocksdb://",
        description="Faust table store: `rocksdb://` (tables on the worker's disk, "
        "memory bounded by the two RocksDB settings below, and a restarted worker "
        "keeps them) or `memory://` (every table in memory and replayed from its "
        "changelog at every start: for tests and small demos).",
    )
    standby_replicas: int = Field(
        0,
        ge=0,
        description="Standby copies of each table partition kept by other workers "
        "(Faust's `table_standby_replicas`, 1 in Faust, 0 in Kafka Streams). A copy "
        "lets a partition that moves to another worker be served at once instead of "
        "after replaying its changelog, but keeping it costs each worker about as "
        "much CPU as making the certificates itself (measured by `certflow bench`); "
        "a worker restarted in place keeps its RocksDB tables either way.",
    )
    rocksdb_write_buffer_mb: int = Field(
        2,
        ge=1,
        description="RocksDB memtable size per table partition (at most two per "
        "partition). Faust's default, 64 MB × 3, grew a worker past 600 MB while it "
        "loaded a million learners: every table partition is its own database.",
    )
    rocksdb_block_cache_mb: int = Field(
        4,
        ge=1,
        description="RocksDB block cache per table partition (Faust's default is 2 GB). "
        "A worker's RocksDB memory stays under tables (9) × its partitions × "
        "(2 × write buffer + block cache).",
    )
    session_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Consumer-group session timeout: how long a worker that stopped "
        "heart-beating (crashed, partitioned) keeps its partitions before they move.",
    )
    rebalance_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="How long the group waits for a worker to finish its part of a "
        "rebalance (Faust's `broker_rebalance_timeout`). A worker whose rebalance step "
        "runs longer is out of the group, and its watchdog stops it (exit status 70) "
        "so that it is started again.",
    )
    heartbeat_interval_seconds: float = Field(
        3.0, gt=0, description="How often a worker tells the group it is alive."
    )
    producer_linger_seconds: float = Field(
        0.005,
        ge=0,
        description="How long the producer waits to fill a batch (Faust's "
        "`producer_linger`). A certificate writes about ten records; 5 ms lets them "
        "share produce requests: on Apache Kafka it cut a worker's CPU per certificate "
        "by about 15 % against 0 (`certflow bench`, paired runs), at 5 ms of latency per hop.",
    )
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none",
        description="How the producer compresses its batches (Faust's "
        "`producer_compression_type`). zstd or lz4 cut the broker's disk per certificate "
        "by 64 % or 56 % at the same CPU (`certflow bench`, paired runs); every client "
        "that reads certflow's topics must then decompress them.",
    )
    producer_max_batch_size: int = Field(
        16384,
        ge=1,
        description="Largest batch the producer sends at once, in bytes (Faust's "
        "`producer_max_batch_size`).",
    )
    consumer_max_poll_records: int = Field(
        1000,
        ge=1,
        description="Most records the consumer hands over from one poll (Faust's "
        "`broker_max_poll_records`). Faust's default, no limit, parses every record "
        "fetched for every partition at once: a worker replaying its changelogs held "
        "about 200 MB of them (1.8 million records replayed: 458 MB peak RSS, 263 MB "
        "with 1,000, at the same rate).",
    )
    recovery_consistency_check: bool = Field(
        True,
        description="Stop a worker whose table store is ahead of its changelog topic "
        "(the broker lost acknowledged writes). Keep it on with Kafka; off, the worker "
        "keeps its own copy and carries on.",
    )
    max_event_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Larger input events are rejected with EVENT_TOO_LARGE before parsing.",
    )

    data_dir: Path = Field(
        Path(".certflow/worker"),
        description="Directory of the worker's local state (table stores); created, "
        "parents included, when the worker starts.",
    )

    # --- Web -------------------------------------------------------------------
    web_bind: str = Field(
        "127.0.0.1",
        description="Address the worker's web server listens on. Loopback by "
        "default; a Kubernetes pod sets 0.0.0.0.",
    )
    web_host: str = Field(
        "127.0.0.1",
        description="Host name other workers and clients use to reach this worker's "
        "web server (requests for another worker's partitions are routed there).",
    )
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the worker's web server.")

    # --- Certificates ------------------------------------------------------------
    public_url: str = Field(
        "http://127.0.0.1:6066",
        description="Public base URL of the workers' web API (the Service or Ingress in "
        "front of them). Status lists are published at `{public_url}/status/{list}`.",
    )
    base_path: str = Field(
        "http://127.0.0.1:6066/certs",
        description="Public base URL of certificates, used when an event has no "
        "`basePath`. A certificate's verify URL (its QR code) is `{basePath}/{id}`.",
    )
    assessment_content_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["SelfAssess"],
        description="Content types whose scores count toward assessment criteria "
        "(case-insensitive; a batch's `contentTypes` says each content's type). "
        "`*` counts every content.",
    )
    suppress_signatory_errors: bool = Field(
        True,
        description="Sunbird's `enable.suppress.exception`: accept generate events "
        "whose signatories have blank fields (they are left off the certificate) "
        "instead of rejecting them.",
    )

    # --- Credentials ------------------------------------------------------------------
    signing_keys_file: Path | None = Field(
        None,
        description="JSON file of Ed25519 signing keys (`certflow keys generate --file F` "
        "writes it); the newest key signs, every key in it verifies. Every worker of a "
        "deployment must have the same keys; a worker with neither this nor "
        "`signing_keys` refuses to start (it never makes up a key of its own).",
    )
    signing_keys: str = Field(
        "",
        description="The same JSON as the keys file, inline (from a Kubernetes Secret); "
        "wins over the file.",
    )
    admin_token: str = Field(
        "",
        description="Bearer token for admin actions and per-learner data: revoking a "
        "certificate, `GET /learners/{userId}/decisions`; it is accepted by `/stats` and "
        "`/metrics` too. Empty: every such route is refused (401).",
    )
    issuer_api_token: str = Field(
        "",
        description="Bearer token of the VC-API's `POST /credentials/issue` (a trusted "
        "system asking this deployment to sign credentials it composed). Empty (the "
        "default): the route does not exist (404). The admin token does not open it.",
    )
    metrics_token: str = Field(
        "",
        description="Optional read-only bearer token for the operators' routes `/stats` "
        "and `/metrics` (e.g. Prometheus' scrape credentials), so a scraper needs no "
        "admin rights. Empty: only the admin token opens them. Certificate "
        "verification (`/certs/…`, `/verify`, `/status/…`), `/health` and `/ready` "
        "need no token.",
    )
    status_list_size: int = Field(
        131072,
        ge=131072,
        description="Entries per BitstringStatusList (the spec's minimum, 16 KB, keeps "
        "holders private in a crowd).",
    )
    trusted_issuers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Issuer DIDs (`did:key:z6Mk…`) whose credentials verify, besides "
        "this deployment's own signing keys (which are always trusted): e.g. the keys "
        "of a deployment this one replaced. Any other issuer is reported as untrusted, "
        "by `POST /verify` and `certflow verify` alike.",
    )
    status_list_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts `certflow verify` may fetch a credential's status list from; "
        "`*.example.org` matches subdomains. Empty: the host of `public_url` only. "
        "Fetched like templates (http(s), size and time limits, non-public addresses "
        "refused unless `fetch_allow_private_networks`).",
    )
    render_cache_size: int = Field(
        256, ge=0, description="Rendered PDFs and PNGs kept in memory per worker (LRU)."
    )

    # --- Templates ------------------------------------------------------------------
    template_root: Path = Field(
        Path(__file__).parent / "templates",
        description="Directory that relative template paths and `file://` URLs must "
        "lie under; nothing outside it is ever read. Defaults to the templates that "
        "ship with certflow (`course-completion.svg`).",
    )
    template_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts templates may be fetched from over http(s); `*.example.org` "
        "matches subdomains. Empty: no remote templates at all.",
    )
    template_rewrites: dict[str, str] = Field(
        default_factory=dict,
        description="URL prefix → replacement, applied before fetching, e.g. to serve "
        "a cloud container from a mirror or a local directory (JSON object).",
    )
    image_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts signature and logo images may be fetched from over http(s) "
        "to embed them in PDFs and PNGs; `*.example.org` matches subdomains. Empty: "
        "remote images are left out of PDFs and PNGs (browsers still show them in the SVG).",
    )
    cloud_base_path: str = Field(
        "",
        description="Replaces Sunbird's `CLOUD_BASE_PATH` placeholder in template URLs "
        "(Sunbird: the CDN name, or the storage base URL, plus the container).",
    )
    template_cache_size: int = Field(64, ge=1, description="Templates kept parsed in memory (LRU).")
    template_cache_ttl_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a cached template is used before it is fetched again, "
        "so an edited template at the same URL is picked up.",
    )

    # --- Fetching (templates, images, status lists) --------------------------------------
    fetch_timeout_seconds: float = Field(10.0, gt=0, description="Total time limit of one fetch.")
    fetch_max_bytes: int = Field(
        2_097_152, ge=1024, description="Largest response body accepted from a fetch."
    )
    fetch_max_redirects: int = Field(3, ge=0, description="Redirects followed by one fetch.")
    image_max_pixels: int = Field(
        4_000_000,
        ge=1,
        description="Largest image a certificate may carry (signatures, logos, images "
        "in templates, fetched or inline `data:`), in pixels as its header declares "
        "them, checked before any pixel is decoded: a 17 KB PNG can declare 12000×12000 "
        "pixels, 576 MB to render.",
    )
    image_max_bytes: int = Field(
        2_097_152,
        ge=1024,
        description="Largest image a certificate may carry, in bytes (a `data:` URI's "
        "decoded content, or a fetched body).",
    )
    image_formats: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["PNG", "JPEG", "GIF", "WEBP"],
        description="Image formats a certificate may carry; a subset of PNG, JPEG, GIF "
        "and WEBP. SVG images are never accepted (they can carry scripts and images "
        "of their own).",
    )
    fetch_allow_private_networks: bool = Field(
        False,
        description="Allow fetches from loopback, private, link-local and other "
        "non-public addresses. Off in production: it is what stops SSRF.",
    )

    # --- Notifications (issue 14: email on issue, re-issue, revoke) -------------------
    smtp_host: str = Field(
        "",
        description="SMTP server the notifier sends learners' email through; empty: no "
        "notification is requested (each is counted as skipped, `no_smtp_server`).",
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="Port of `smtp_host` (587: submission).")
    smtp_from: str = Field(
        "", description="The `From:` address of notifications, e.g. `Certificates <certs@example.org>`."
    )
    smtp_username: str = Field("", description="SMTP login; empty: no authentication.")
    smtp_password: str = Field("", description="SMTP password for `smtp_username`.")
    smtp_starttls: bool = Field(
        True,
        description="`true`: upgrade the connection with STARTTLS before authenticating "
        "(required when a password is sent); `false`: plain SMTP (a local relay, tests).",
    )
    smtp_timeout_seconds: float = Field(30.0, gt=0, description="Time limit of one SMTP exchange.")
    smtp_max_attempts: int = Field(
        5, ge=1, le=20,
        description="Attempts per notification on transient failures (4xx, lost "
        "connection) before it goes to its failed topic; 5xx answers are not retried.",
    )
    smtp_backoff_seconds: float = Field(
        1.0, gt=0, description="First retry delay; doubled after each attempt (with jitter)."
    )
    smtp_backoff_max_seconds: float = Field(60.0, gt=0, description="Longest delay between two attempts.")
    notify_attach_pdf: bool = Field(
        False, description="Attach the certificate's PDF to the notification email."
    )
    learner_link_secret: str = Field(
        "",
        description="Key of the learner-page links' HMAC-SHA256. Empty (the default): "
        "derived from the current signing key, like the access codes, so every worker "
        "shares it with nothing more to distribute; set it to keep links valid across "
        "a signing-key rotation.",
    )
    learner_link_days: int = Field(
        90, ge=1, le=3650, description="How long a learner-page link in an email stays valid."
    )
    # --- Operations ---------------------------------------------------------------------
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="The worker's event loop: `uvloop` (libuv's, as Faust's `-L uvloop`) or "
        "`asyncio` (the standard library's, to rule the loop out when diagnosing).",
    )
    log_level: Literal["crit", "error", "warn", "info", "debug"] = Field(
        "info", description="Log level of the worker (`warning` and `critical` are accepted too)."
    )

    @field_validator(
        "signing_keys_file", "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty file setting (``CERTFLOW_SIGNING_KEYS_FILE=``) means "not set", not
        the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _kafka_security_fits_together(self) -> Settings:
        """A SASL protocol without a login, or a login or TLS files the protocol would
        ignore, stop the settings from loading: a worker must not start believing it
        authenticates (the checks are :class:`~certflow.kafka_client.KafkaConnection`'s)."""
        _ = self.kafka
        return self

    @field_validator("image_formats", mode="after")
    @classmethod
    def _raster_formats(cls, value: list[str]) -> list[str]:
        formats = [name.strip().upper() for name in value if name.strip()]
        formats = ["JPEG" if name == "JPG" else name for name in formats]
        unknown = sorted(set(formats) - {"PNG", "JPEG", "GIF", "WEBP"})
        if unknown or not formats:
            raise ValueError(
                f"image formats must be some of PNG, JPEG, GIF, WEBP (got {unknown or 'none'})"
            )
        return formats

    @field_validator(
        "template_allowed_hosts",
        "image_allowed_hosts",
        "assessment_content_types",
        "trusted_issuers",
        "status_list_allowed_hosts",
        "image_formats",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Accept `a,b` as well as a JSON list, as operators write both."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [host.strip() for host in text.split(",") if host.strip()]
        return value

    @field_validator("trusted_issuers", mode="after")
    @classmethod
    def _did_keys(cls, value: list[str]) -> list[str]:
        """Each a did:key DID, checked now: a typo must stop the worker, not trust nobody."""
        from certflow.credentials.trust import issuer_did

        return [issuer_did(entry) for entry in value]

    log_format: Literal["json", "text"] = Field(
        "json",
        description="`json`: one JSON object per line (time, level, logger, message and "
        "the event's topic/partition/offset where there is one), for log pipelines; "
        "`text`: Faust's coloured lines, for a terminal.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _faust_level_names(cls, value: Any) -> Any:
        """Faust's names are short; accept the usual long ones as well."""
        if isinstance(value, str):
            value = value.lower()
            return {"warning": "warn", "critical": "crit", "fatal": "crit"}.get(value, value)
        return value

    @property
    def topics(self) -> TopicNames:
        # Read for every event (its dead-letter topic): built once per prefix.
        return TopicNames.with_prefix(self.topic_prefix)

    @property
    def kafka(self) -> KafkaConnection:
        """The brokers and how to reach them: what every Kafka client certflow makes,
        and the Faust app, are built from (``certflow.kafka_client``)."""
        from certflow.kafka_client import KafkaConnection

        return KafkaConnection(
            self.broker,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
        )
