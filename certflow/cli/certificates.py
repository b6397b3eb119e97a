"""Certificates offline: render a template, verify a credential, manage signing keys."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from certflow.cli.root import cli
from certflow.errors import CertflowError
from certflow.events.records import IssuedCertificate
from certflow.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from certflow.credentials.keys import KeyRing
    from certflow.credentials.status_list import StatusList
    from certflow.credentials.trust import TrustPolicy


@cli.command()
@click.argument("template", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the certificate: .svg (the filled template), .pdf or .png "
              "(rendered exactly as a worker renders its downloads).")
@click.option("--json-output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the certificate record (id, credential …) as JSON.")
def render(template: Path, data: Path, output: Path, json_output: Path | None) -> None:
    """Fill TEMPLATE with DATA offline, to preview a template while authoring it.

    DATA is a generate-certificate event, or just its `edata`; its first recipient
    is rendered, with a real QR code, exactly as a worker would render it. The
    extension of OUTPUT names the format: .svg, .pdf or .png, made by the very
    function behind a worker's /certs/{id}.pdf and .png.
    """
    from certflow.errors import CertflowError
    from certflow.render.images import ImageLimits
    from certflow.render.output import output_format, render_certificate

    try:
        fmt = output_format(output)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="-o/--output") from None
    try:
        certificate = asyncio.run(_render(template, data))
        body = render_certificate(certificate.svg, fmt, image_limits=ImageLimits.from_settings(Settings()),
                                  title=certificate.certificateName)
    except CertflowError as exc:
        raise click.ClickException(f"{exc.code.value}: {exc.message}") from None
    output.write_bytes(body)
    click.echo(f"wrote {output} (certificate {certificate.id})", err=True)
    if json_output is not None:
        json_output.write_bytes(orjson.dumps(certificate.model_dump(mode="json"), option=orjson.OPT_INDENT_2))


async def _render(template: Path, data: Path) -> IssuedCertificate:
    from certflow.credentials.keys import KeyRing, SigningKey
    from certflow.events.models import decode_json_object, parse_event
    from certflow.generate.factory import build_certificate_factory
    from certflow.generate.models import GenerateCertificateRequest, validation_context
    from certflow.render.fetch import FetchPolicy, SafeFetcher

    settings = Settings()
    document = decode_json_object(data.read_bytes(), max_bytes=settings.max_event_bytes)
    if "edata" not in document:
        document = {"edata": document}
    document["edata"]["svgTemplate"] = template.name
    request = parse_event(
        GenerateCertificateRequest,
        orjson.dumps(document),
        max_bytes=settings.max_event_bytes,
        context=validation_context(suppress_signatory_errors=True),
    )
    first = next(request.per_recipient())
    # The template is read from its own folder, and made exactly as a worker makes it.
    preview = settings.model_copy(update={"template_root": template.resolve().parent})
    async with SafeFetcher(FetchPolicy.from_settings(preview)) as fetcher:
        # A throwaway key: a preview is not a certificate anyone should trust.
        factory = build_certificate_factory(preview, fetcher, KeyRing((SigningKey.generate(),)))
        return await factory.issue(first, now=datetime.now(UTC))


@cli.group()
def keys() -> None:
    """Ed25519 signing keys (did:key): the newest signs, all of them verify.

    Without --file the key file is CERTFLOW_SIGNING_KEYS_FILE, the one workers use.
    Every worker of a deployment must have the same keys (the file, or its content
    in CERTFLOW_SIGNING_KEYS); a worker without keys refuses to start.
    """


_keys_file_option = click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Key file [default: CERTFLOW_SIGNING_KEYS_FILE].",
)


@keys.command("generate")
@_keys_file_option
def keys_generate(path: Path | None) -> None:
    """Add a new key to the key file (created, mode 0600, if missing); it signs from now on.

    Prints the new key's verification method. Old keys stay in the file, so the
    certificates they signed keep verifying.
    """
    from certflow.credentials.keys import append_new_key, keys_file

    settings = Settings()
    target = path or keys_file(settings)
    if target is None:
        raise click.ClickException(
            "say which key file: --file keys.json (then give workers "
            "CERTFLOW_SIGNING_KEYS_FILE=keys.json), or set CERTFLOW_SIGNING_KEYS_FILE"
        )
    if path is None and settings.signing_keys.strip():
        click.echo(
            "warning: CERTFLOW_SIGNING_KEYS is set and wins over the key file; "
            f"workers will not use the key added to {target}",
            err=True,
        )
    try:
        key = append_new_key(target)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added a signing key to {target}", err=True)
    click.echo(key.verification_method)


@keys.command("list")
@_keys_file_option
def keys_list(path: Path | None) -> None:
    """Print each key's verification method and creation time, oldest first.

    The last one is the key that signs. Private keys are never printed.
    """
    from certflow.credentials.keys import KeyRing, keys_file

    settings = Settings()
    try:
        if path is None and settings.signing_keys.strip():
            click.echo("keys from CERTFLOW_SIGNING_KEYS", err=True)
            ring = KeyRing.from_json(settings.signing_keys)
        else:
            target = path or keys_file(settings)
            if target is None:
                raise click.ClickException(
                    "no keys configured: give --file, or set CERTFLOW_SIGNING_KEYS_FILE or "
                    "CERTFLOW_SIGNING_KEYS"
                )
            if not target.exists():
                raise click.ClickException(f"no key file at {target} (`certflow keys generate` makes one)")
            ring = KeyRing.load(target)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for key in ring.keys:
        marker = "  (signs)" if key is ring.current else ""
        click.echo(f"{key.verification_method}  {key.created.strftime('%Y-%m-%dT%H:%M:%SZ')}{marker}")


@cli.command()
@click.argument("source")
@click.option("--trust", "trusted", multiple=True, metavar="DID",
              help="Also trust this issuer (a did:key DID); repeatable. Always trusted: this "
              "deployment's signing keys and CERTFLOW_TRUSTED_ISSUERS.")
@click.option("--no-status", is_flag=True,
              help="Do not fetch the status list (for a credential checked fully offline).")
def verify(source: str, trusted: tuple[str, ...], no_status: bool) -> None:
    """Verify a certificate: a credential JSON FILE, or a certificate URL.

    Checks the signature (did:key issuers resolve offline, nothing is fetched for
    them), that it is a certificate, the validity period, the issuer, and
    revocation, by fetching the credential's status list and verifying that list's
    own signature. Prints every check as JSON; exits 0 only when the certificate is
    valid.

    \b
    Trusted issuers, and only they, verify: this deployment's signing keys
    (CERTFLOW_SIGNING_KEYS, else the key file, read and never created),
    CERTFLOW_TRUSTED_ISSUERS and --trust. Anyone can make a did:key, so any other
    issuer is reported as "untrusted issuer did:key:…".

    \b
    The status list URL comes from the credential, so it is fetched like a template:
    http(s) only, from CERTFLOW_STATUS_LIST_ALLOWED_HOSTS (default: the host of
    CERTFLOW_PUBLIC_URL), public addresses only unless
    CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS, within CERTFLOW_FETCH_MAX_BYTES and
    CERTFLOW_FETCH_TIMEOUT_SECONDS. SOURCE is the operator's choice: a local file
    is read, a URL fetched from its own host (loopback and private addresses too),
    within the same size and time limits.
    """
    settings, trust = _trust_policy(trusted)
    try:
        report = asyncio.run(_verification_report(source, settings, trust, no_status))
    except (OSError, ValueError, CertflowError) as exc:
        reason = exc.message if isinstance(exc, CertflowError) else str(exc)
        raise click.ClickException(f"cannot read {source}: {reason}") from None
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    for check in report["checks"]:
        mark = "ok " if check["ok"] else "FAIL"
        click.echo(f"{mark} {check['check']}: {check['reason']}", err=True)
    sys.exit(0 if report["verified"] else 1)


def _trust_policy(trusted: tuple[str, ...]) -> tuple[Settings, TrustPolicy]:
    """The settings, and the issuers `certflow verify` trusts (warning when none is)."""
    from certflow.credentials.trust import TrustPolicy, issuer_did

    for did in trusted:
        try:
            issuer_did(did)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--trust") from None
    try:
        settings = Settings()
    except ValueError as exc:  # a CERTFLOW_TRUSTED_ISSUERS entry that is not a did:key, say
        raise click.ClickException(str(exc)) from None
    trust = TrustPolicy.from_settings(settings, _deployment_keys(settings), also=trusted)
    if not trust.issuers:
        click.echo("warning: no issuer is trusted (no signing keys configured, no "
                   "CERTFLOW_TRUSTED_ISSUERS, no --trust): nothing can verify", err=True)
    return settings, trust


async def _verification_report(
    source: str, settings: Settings, trust: TrustPolicy, no_status: bool
) -> dict[str, Any]:
    """Every check of the certificate in ``source``, as `certflow verify` prints them."""
    from certflow.credentials.status_list import status_lookup
    from certflow.credentials.verification import verify_certificate

    credential = _credential_in(await _load_source(source, settings))
    now = datetime.now(UTC)
    status_of = None
    if not no_status:
        lists, problems = await _status_lists(credential, settings, trust, now)

        def status_of(entry: Mapping[str, Any]) -> bool | None:
            url = entry.get("statusListCredential")
            if isinstance(url, str) and url in problems:
                raise LookupError(problems[url])
            return status_lookup(lists)(entry)

    result = verify_certificate(credential, trust=trust, status_of=status_of, now=now)
    report = result.as_dict()
    if no_status:
        report["checks"] = [c for c in report["checks"] if c["check"] != "status"]
        report["verified"] = all(c["ok"] for c in report["checks"])
    return report


def _deployment_keys(settings: Settings) -> KeyRing | None:
    """This deployment's key ring, read only (never created); None, with a warning, if none."""
    from certflow.credentials.keys import configured_key_ring, keys_file

    try:
        ring = configured_key_ring(settings)
    except (OSError, ValueError) as exc:
        click.echo(f"warning: cannot read this deployment's signing keys ({exc}); "
                   "only CERTFLOW_TRUSTED_ISSUERS and --trust are trusted", err=True)
        return None
    if ring is None:
        where = keys_file(settings) or "CERTFLOW_SIGNING_KEYS_FILE (unset)"
        click.echo(f"warning: no signing keys at {where} (nor CERTFLOW_SIGNING_KEYS); "
                   "only CERTFLOW_TRUSTED_ISSUERS and --trust are trusted", err=True)
    return ring


async def _load_source(source: str, settings: Settings) -> dict[str, object]:
    """A JSON object from a file or an http(s) URL, within the fetch limits.

    The operator chose SOURCE, so a URL is fetched from its own host whatever the
    address (a worker on loopback is the usual case), but redirects stay on that
    host, and size and time are bounded as for any fetch. A file is read only up to
    the same size (``/dev/zero`` is not read for ever).
    """
    from certflow.jsonlimits import loads_bounded

    limit = settings.fetch_max_bytes
    if source.startswith(("http://", "https://")):
        from yarl import URL

        from certflow.render.fetch import FetchPolicy, SafeFetcher

        policy = FetchPolicy(
            allowed_hosts=(URL(source).raw_host or "",),
            allow_private_networks=True,
            timeout_seconds=settings.fetch_timeout_seconds,
            max_bytes=limit,
            max_redirects=settings.fetch_max_redirects,
            what="certificate",
        )
        async with SafeFetcher(policy) as fetcher:
            raw = (await fetcher.fetch(source)).body
    else:
        with Path(source).open("rb") as file:
            raw = file.read(limit + 1)
        if len(raw) > limit:
            raise ValueError(f"larger than CERTFLOW_FETCH_MAX_BYTES ({limit} bytes)")
    document = loads_bounded(raw)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def _credential_in(document: dict[str, object]) -> dict[str, object]:
    """The credential in what a worker serves (`credential`), a record (`certificate`), or itself."""
    for field in ("credential", "certificate", "verifiableCredential"):
        inner = document.get(field)
        if isinstance(inner, dict):
            return inner
    return document


async def _status_lists(
    credential: dict[str, object], settings: Settings, trust: TrustPolicy, now: datetime
) -> tuple[dict[str, StatusList], dict[str, str]]:
    """The credential's status lists, fetched safely and verified, and why any is not had.

    Fetched under ``FetchPolicy.for_status_lists`` (the credential chooses the URL),
    and believed only when ``verification.verified_status_list`` says so: a trusted
    status list credential issued by the credential's own issuer.
    """
    from certflow.credentials.verification import issuer_id, verified_status_list
    from certflow.jsonlimits import loads_bounded
    from certflow.render.fetch import FetchPolicy, SafeFetcher

    entries = credential.get("credentialStatus")
    entries = entries if isinstance(entries, list) else [entries]
    urls = list(dict.fromkeys(
        entry["statusListCredential"] for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("statusListCredential"), str)
    ))
    lists: dict[str, StatusList] = {}
    problems: dict[str, str] = {}
    async with SafeFetcher(FetchPolicy.for_status_lists(settings)) as fetcher:
        for url in urls:
            try:
                published = loads_bounded((await fetcher.fetch(url)).body)
                if not isinstance(published, dict):
                    raise ValueError(f"status list {url} is not a JSON object")
                lists[url] = verified_status_list(
                    published, url=url, issuer=issuer_id(credential), trust=trust, now=now
                )
            except CertflowError as exc:  # refused or failed fetch: "status unknown", with why
                problems[url] = exc.message
            except ValueError as exc:
                problems[url] = str(exc)
            if url in problems:
                click.echo(f"status list {url} unavailable: {problems[url]}", err=True)
    return lists, problems


