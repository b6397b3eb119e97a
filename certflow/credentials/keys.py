"""Ed25519 signing keys, named as ``did:key`` identifiers, kept in a key ring.

Why ``did:key``: the public key *is* the identifier, so any verifier can check a
certflow credential offline, with no DID registry, web server or certflow service
to ask. Why a ring: keys are rotated, and a certificate signed last year must keep
verifying, so every key ever used stays in the ring (for verifying) while only the
newest one signs.

Key file format (JSON, newest key last)::

    {"keys": [{"privateKeyMultibase": "z3u2…",   # multicodec 0x1300 + 32-byte seed, base58btc
               "publicKeyMultibase": "z6Mk…",    # multicodec 0xed01 + 32-byte key, base58btc
               "created": "2026-11-24T09:30:00Z"}]}

The encodings are the W3C Multikey ones (Controller Documents §2.2.2), so a key
file's entries can be handed to other Multikey tooling as they are.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import base58
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

if TYPE_CHECKING:
    from certflow.settings import Settings


#: Multicodec prefix of an Ed25519 public key (``ed25519-pub``, 0xed as a varint).
ED25519_PUBLIC_PREFIX = b"\xed\x01"
#: Multicodec prefix of an Ed25519 private key seed (``ed25519-priv``, 0x1300 as a varint).
ED25519_PRIVATE_PREFIX = b"\x80\x26"
#: File name of the key ring earlier versions created in ``data_dir`` when no file
#: was configured (now only named in the message of a worker without keys).
DEFAULT_KEYS_FILE_NAME = "signing-keys.json"


def multibase_base58btc(data: bytes) -> str:
    """Multibase base58btc: the ``z`` prefix, then Bitcoin-alphabet base58."""
    return "z" + base58.b58encode(data).decode("ascii")


def decode_multibase_base58btc(text: str) -> bytes:
    """Inverse of :func:`multibase_base58btc`; ``ValueError`` for anything else."""
    if not isinstance(text, str) or not text.startswith("z") or len(text) < 2:
        raise ValueError("not a multibase base58btc value (it must start with 'z')")
    try:
        return base58.b58decode(text[1:])
    except ValueError as exc:
        raise ValueError(f"invalid base58btc: {exc}") from None


def public_key_multibase(public_key: bytes) -> str:
    """``z6Mk…``: the Multikey form of a 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return multibase_base58btc(ED25519_PUBLIC_PREFIX + public_key)


def decode_public_key_multibase(text: str) -> bytes:
    """The 32-byte Ed25519 public key in a ``z6Mk…`` Multikey value."""
    raw = decode_multibase_base58btc(text)
    if not raw.startswith(ED25519_PUBLIC_PREFIX) or len(raw) != 34:
        raise ValueError("not an Ed25519 public key (multicodec 0xed01 + 32 bytes)")
    return raw[2:]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 key pair and the ``did:key`` names derived from it."""

    private_key: Ed25519PrivateKey = field(repr=False)
    created: datetime

    @classmethod
    def generate(cls, *, created: datetime | None = None) -> SigningKey:
        return cls(Ed25519PrivateKey.generate(), created or datetime.now(UTC).replace(microsecond=0))

    @classmethod
    def from_seed(cls, seed: bytes, *, created: datetime) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(seed), created)

    @cached_property
    def public_key_bytes(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @cached_property
    def public_key_multibase(self) -> str:
        return public_key_multibase(self.public_key_bytes)

    @property
    def did(self) -> str:
        return f"did:key:{self.public_key_multibase}"

    @property
    def verification_method(self) -> str:
        """What a proof names as its key: ``did:key:z6Mk…#z6Mk…``."""
        return f"{self.did}#{self.public_key_multibase}"

    @property
    def private_key_multibase(self) -> str:
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
        )

        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return multibase_base58btc(ED25519_PRIVATE_PREFIX + seed)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self.private_key.sign(data)

    def to_json(self) -> dict[str, str]:
        return {
            "privateKeyMultibase": self.private_key_multibase,
            "publicKeyMultibase": self.public_key_multibase,
            "created": _iso(self.created),
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> SigningKey:
        """A key from its file entry; a public key that does not match the private one is refused."""
        try:
            raw = decode_multibase_base58btc(entry["privateKeyMultibase"])
        except KeyError:
            raise ValueError("a key entry needs privateKeyMultibase") from None
        if not raw.startswith(ED25519_PRIVATE_PREFIX) or len(raw) != 34:
            raise ValueError("privateKeyMultibase is not an Ed25519 seed (multicodec 0x1300 + 32 bytes)")
        created_text = entry.get("created")
        try:
            created = _parse_time(created_text) if created_text else datetime.fromtimestamp(0, UTC)
        except (TypeError, ValueError):
            raise ValueError(f"created is not an ISO date-time: {created_text!r}") from None
        key = cls.from_seed(raw[2:], created=created)
        stated = entry.get("publicKeyMultibase")
        if stated is not None and stated != key.public_key_multibase:
            raise ValueError(
                f"publicKeyMultibase {stated!r} does not belong to its private key "
                f"(which gives {key.public_key_multibase!r})"
            )
        return key


@dataclass(frozen=True)
class KeyRing:
    """Every signing key certflow has used, oldest first; the newest one signs.

    Order, not the ``created`` stamps, decides which key is newest: keys made on
    different machines need not have comparable clocks, but appending to the file
    is unambiguous.
    """

    keys: tuple[SigningKey, ...]
    _by_method: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring needs at least one key")
        object.__setattr__(
            self, "_by_method", {key.verification_method: key.public_key_bytes for key in self.keys}
        )

    @property
    def current(self) -> SigningKey:
        """The key new credentials are signed with."""
        return self.keys[-1]

    def find(self, verification_method: str) -> bytes | None:
        """The public key of any key in the ring (old ones too), or None.

        Its signature fits ``verify_proof``'s ``resolve_key``: credentials signed
        before a rotation keep verifying because the old key stays here.
        """
        return self._by_method.get(verification_method)

    @property
    def dids(self) -> frozenset[str]:
        """Every key's DID: the issuers this ring vouches for."""
        return frozenset(key.did for key in self.keys)

    def with_new_key(self, *, created: datetime | None = None) -> KeyRing:
        """This ring plus a fresh key, which becomes the current one."""
        return KeyRing((*self.keys, SigningKey.generate(created=created)))

    # --- JSON ------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({"keys": [key.to_json() for key in self.keys]}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"signing keys are not JSON: {exc}") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError('signing keys must be {"keys": [ … at least one key … ]}')
        return cls(tuple(SigningKey.from_json(entry) for entry in _objects(entries)))

    # --- files -------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        try:
            return cls.from_json(path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def save(self, path: Path) -> None:
        """Write the ring to ``path`` readable by its owner only (0600), atomically.

        The temporary file is created 0600 before any secret is written to it, so
        the private keys are never readable by others, not even for a moment.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(self.to_json())
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The ring a worker signs with: ``signing_keys`` (inline JSON, e.g. from a
        Kubernetes Secret), else ``signing_keys_file``.

        Neither set is :class:`SigningKeysMissing`, never a key made up on the spot:
        workers that each made their own would sign with different keys, and every
        certificate one of them issued would fail verification on the others. A
        worker refuses to start instead, saying how to configure them.
        """
        if settings.signing_keys.strip():
            return cls.from_json(settings.signing_keys)
        if settings.signing_keys_file is None:
            earlier = Path(settings.data_dir) / DEFAULT_KEYS_FILE_NAME
            hint = (
                f" A key file made by an earlier certflow is at {earlier}: set "
                f"CERTFLOW_SIGNING_KEYS_FILE={earlier} to keep signing with its key."
                if earlier.exists()
                else ""
            )
            raise SigningKeysMissing(f"no signing keys are configured. {HOW_TO_CONFIGURE_KEYS}{hint}")
        path = Path(settings.signing_keys_file)
        if not path.exists():
            raise SigningKeysMissing(
                f"CERTFLOW_SIGNING_KEYS_FILE={path} does not exist. {HOW_TO_CONFIGURE_KEYS}"
            )
        return cls.load(path)


def configured_key_ring(settings: Settings) -> KeyRing | None:
    """The ring the settings name, read only: ``None`` when none is configured or exists.

    What :meth:`KeyRing.from_settings` reads, except that nothing missing is an
    error: for tools that only verify (``certflow verify``), which must never mint a
    key, let alone trust one they just made.
    """
    if settings.signing_keys.strip():
        return KeyRing.from_json(settings.signing_keys)
    path = keys_file(settings)
    if path is None or not path.exists():
        return None
    return KeyRing.load(path)


class SigningKeysMissing(ValueError):
    """No signing keys are configured (or the configured file is missing)."""


#: What a worker without keys says: one key ring, made once, shared by all workers.
HOW_TO_CONFIGURE_KEYS = (
    "Make a key file once with `certflow keys generate --file keys.json` and give every "
    "worker of the deployment the same keys: CERTFLOW_SIGNING_KEYS_FILE=keys.json, or "
    "the file's content in CERTFLOW_SIGNING_KEYS (e.g. from a Kubernetes Secret). Each "
    "worker making its own key would sign with a different one, and certificates would "
    "fail verification on the other workers."
)


def keys_file(settings: Settings) -> Path | None:
    """The key file the settings name (``signing_keys_file``), if any."""
    if settings.signing_keys_file is not None:
        return Path(settings.signing_keys_file)
    return None


def append_new_key(path: Path, *, created: datetime | None = None) -> SigningKey:
    """Add a fresh key to the ring in ``path`` (created if missing) and return it."""
    ring = KeyRing.load(path).with_new_key(created=created) if path.exists() else KeyRing(
        (SigningKey.generate(created=created),)
    )
    ring.save(path)
    return ring.current


def _objects(entries: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"key #{index} is not a JSON object")
        yield entry
