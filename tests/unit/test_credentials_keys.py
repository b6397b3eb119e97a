"""Signing keys: did:key names, the key ring, its file, rotation and the CLI."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from certflow.cli import cli
from certflow.credentials.keys import (
    KeyRing,
    SigningKey,
    SigningKeysMissing,
    append_new_key,
    decode_multibase_base58btc,
    decode_public_key_multibase,
    keys_file,
)
from certflow.settings import Settings

# The key pair of the W3C "Data Integrity EdDSA Cryptosuites v1.0" test vectors.
W3C_PRIVATE = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
W3C_PUBLIC = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
CREATED = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def settings(tmp_path: Path, **values: object) -> Settings:
    defaults: dict[str, object] = {"data_dir": tmp_path / "worker", "signing_keys": "", "signing_keys_file": None}
    return Settings(**{**defaults, **values})


def test_a_key_is_named_by_did_key_from_its_public_key() -> None:
    key = SigningKey.generate(created=CREATED)
    assert key.public_key_multibase.startswith("z6Mk")
    assert decode_public_key_multibase(key.public_key_multibase) == key.public_key_bytes
    assert key.did == f"did:key:{key.public_key_multibase}"
    assert key.verification_method == f"{key.did}#{key.public_key_multibase}"


def test_multikey_encodings_match_the_w3c_test_vector_key_pair() -> None:
    key = SigningKey.from_json({"privateKeyMultibase": W3C_PRIVATE, "created": "2023-02-24T23:36:38Z"})
    assert key.public_key_multibase == W3C_PUBLIC
    assert key.private_key_multibase == W3C_PRIVATE
    assert decode_multibase_base58btc(W3C_PRIVATE)[:2] == b"\x80\x26"  # multicodec 0x1300


def test_a_key_entry_whose_public_key_does_not_match_is_refused() -> None:
    other = SigningKey.generate()
    with pytest.raises(ValueError, match="does not belong"):
        SigningKey.from_json({"privateKeyMultibase": W3C_PRIVATE, "publicKeyMultibase": other.public_key_multibase})


@pytest.mark.parametrize(
    "document",
    ["not json", "{}", '{"keys": []}', '{"keys": ["z"]}', '{"keys": [{"privateKeyMultibase": "z6Mk"}]}'],
)
def test_malformed_key_files_are_refused_with_a_reason(document: str) -> None:
    with pytest.raises(ValueError):
        KeyRing.from_json(document)


def test_the_newest_key_signs_and_every_key_verifies() -> None:
    old = SigningKey.generate(created=CREATED)
    ring = KeyRing((old,)).with_new_key()
    assert ring.current is not old
    assert ring.find(old.verification_method) == old.public_key_bytes
    assert ring.find(ring.current.verification_method) == ring.current.public_key_bytes
    assert ring.find(SigningKey.generate().verification_method) is None
    assert ring.dids == {old.did, ring.current.did}


def test_a_key_ring_is_never_empty() -> None:
    with pytest.raises(ValueError):
        KeyRing(())


def test_a_key_file_round_trips_and_only_its_owner_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "keys.json"
    ring = KeyRing((SigningKey.generate(created=CREATED),)).with_new_key(created=CREATED)
    ring.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeyRing.load(path)
    assert [key.verification_method for key in loaded.keys] == [key.verification_method for key in ring.keys]
    assert loaded.keys[0].created == CREATED
    entry = json.loads(path.read_text())["keys"][0]
    assert set(entry) == {"privateKeyMultibase", "publicKeyMultibase", "created"}
    assert entry["created"] == "2026-11-24T09:30:00Z"


def test_appending_a_key_keeps_the_old_ones_and_makes_the_new_one_current(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = append_new_key(path)
    second = append_new_key(path)
    ring = KeyRing.load(path)
    assert [key.verification_method for key in ring.keys] == [first.verification_method, second.verification_method]
    assert ring.current.verification_method == second.verification_method
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_inline_keys_win_over_the_key_file(tmp_path: Path) -> None:
    inline = KeyRing((SigningKey.generate(),))
    file_ring = KeyRing((SigningKey.generate(),))
    file_ring.save(tmp_path / "keys.json")
    chosen = KeyRing.from_settings(
        settings(tmp_path, signing_keys=inline.to_json(), signing_keys_file=tmp_path / "keys.json")
    )
    assert chosen.current.verification_method == inline.current.verification_method


def test_a_configured_key_file_is_used_and_must_exist(tmp_path: Path) -> None:
    file_ring = KeyRing((SigningKey.generate(),))
    file_ring.save(tmp_path / "keys.json")
    chosen = KeyRing.from_settings(settings(tmp_path, signing_keys_file=tmp_path / "keys.json"))
    assert chosen.current.verification_method == file_ring.current.verification_method
    with pytest.raises(SigningKeysMissing, match=r"missing\.json does not exist"):
        KeyRing.from_settings(settings(tmp_path, signing_keys_file=tmp_path / "missing.json"))


def test_without_configuration_no_key_is_made_up_and_the_error_says_how(tmp_path: Path) -> None:
    """Workers that each made their own key signed with different keys: half the
    certificates failed verification on the other worker (issue 10, hole 8)."""
    configured = settings(tmp_path)

    with pytest.raises(SigningKeysMissing) as caught:
        KeyRing.from_settings(configured)

    assert "certflow keys generate --file keys.json" in str(caught.value)
    assert "CERTFLOW_SIGNING_KEYS_FILE=keys.json" in str(caught.value)
    assert "CERTFLOW_SIGNING_KEYS " in str(caught.value)
    assert keys_file(configured) is None
    assert not (tmp_path / "worker").exists()


def test_a_key_file_an_earlier_version_made_is_named_not_used(tmp_path: Path) -> None:
    KeyRing((SigningKey.generate(),)).save(tmp_path / "worker" / "signing-keys.json")

    with pytest.raises(SigningKeysMissing, match=r"CERTFLOW_SIGNING_KEYS_FILE=.*worker/signing-keys\.json"):
        KeyRing.from_settings(settings(tmp_path))


def test_keys_generate_and_list_on_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "keys.json"
    first = runner.invoke(cli, ["keys", "generate", "--file", str(path)])
    second = runner.invoke(cli, ["keys", "generate", "--file", str(path)])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert first.stdout.strip().startswith("did:key:z6Mk")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    listed = runner.invoke(cli, ["keys", "list", "--file", str(path)])
    assert listed.exit_code == 0
    lines = listed.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [first.stdout.strip(), second.stdout.strip()]
    assert lines[-1].endswith("(signs)")
    private = json.loads(path.read_text())["keys"][0]["privateKeyMultibase"]
    assert private not in listed.output


def test_keys_commands_default_to_the_workers_key_file(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {
        "CERTFLOW_DATA_DIR": str(tmp_path / "data"),
        "CERTFLOW_SIGNING_KEYS": None,
        "CERTFLOW_SIGNING_KEYS_FILE": str(tmp_path / "keys.json"),
    }
    missing = runner.invoke(cli, ["keys", "list"], env=env)
    assert missing.exit_code != 0 and "no key file" in missing.output
    made = runner.invoke(cli, ["keys", "generate"], env=env)
    assert made.exit_code == 0, made.output
    assert (tmp_path / "keys.json").exists()
    assert made.stdout.strip() in runner.invoke(cli, ["keys", "list"], env=env).stdout


def test_keys_commands_without_a_file_say_which_to_give(tmp_path: Path) -> None:
    """No more {data_dir}/signing-keys.json that no worker would read."""
    env = {"CERTFLOW_DATA_DIR": str(tmp_path / "data"), "CERTFLOW_SIGNING_KEYS": None,
           "CERTFLOW_SIGNING_KEYS_FILE": None}
    made = CliRunner().invoke(cli, ["keys", "generate"], env=env)
    assert made.exit_code != 0 and "--file" in made.output
    assert not (tmp_path / "data").exists()
