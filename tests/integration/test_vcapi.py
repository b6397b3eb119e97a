"""The VC-API on a real worker behind TLS: issue, verify, revoke, presentations, and a
wallet claiming a credential through an exchange.

The worker sits behind a TLS-terminating reverse proxy the test starts (aiohttp, a
self-signed certificate made here with ``cryptography``); ``CERTFLOW_PUBLIC_URL`` is
the proxy's https URL, so every URL the worker builds (credential status lists,
exchange URLs, the DIDAuth domain) is the one a wallet uses. Node trusts the
certificate through ``NODE_EXTRA_CA_CERTS``. The wallet is Digital Bazaar's stack
(tests/interop/wallet.mjs); the credential it ends up holding is checked by Digital
Bazaar's verifier (verify.mjs) and the DCC's (verify_dcc.mjs).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import ipaddress
import json
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certflow.broker import free_port
from certflow.credentials.contexts import OB_V3_CONTEXT
from certflow.credentials.keys import KeyRing, SigningKey
from certflow.credentials.proof import AUTHENTICATION, sign
from certflow.kafka import produce
from certflow.notify.links import derive_link_secret, learner_token
from certflow.topics import TopicNames
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "vcapi-admin-token"
ISSUER_TOKEN = "vcapi-issuer-token"
INTEROP = Path(__file__).resolve().parents[1] / "interop"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "proxy.crt", directory / "proxy.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


class TlsProxy:
    """https://127.0.0.1:{port} → http://127.0.0.1:{upstream}, in a thread of its own."""

    def __init__(self, port: int, upstream: int, cert: Path, key: Path) -> None:
        self.port, self.upstream = port, upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("accept", "authorization", "content-type")}
        async with ClientSession() as session, session.request(
            request.method, f"http://127.0.0.1:{self.upstream}{request.rel_url}",
            headers=headers, data=await request.read(),
        ) as answer:
            body = await answer.read()
            passed = {k: v for k, v in answer.headers.items()
                      if k.lower() in ("content-type", "location", "www-authenticate")}
            return web.Response(status=answer.status, body=body, headers=passed)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.context).start()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Service:
    """The worker behind the proxy: JSON calls over https."""

    def __init__(self, url: str, cafile: Path, did: str) -> None:
        self.url, self.did = url, did
        self.cafile = cafile
        self.context = ssl.create_default_context(cafile=str(cafile))

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=60) as answer:
                return answer.status, json.loads(answer.read() or b"null"), dict(answer.headers)
        except urllib.error.HTTPError as error:
            text = error.read()
            return error.code, json.loads(text) if text else None, dict(error.headers)


def start_deployment(broker, workdir: Path, **settings: str) -> tuple[Deployment, TlsProxy, Service]:
    cert, key = self_signed(workdir)
    proxy_port = free_port()
    public_url = f"https://127.0.0.1:{proxy_port}"
    deployment = Deployment(broker, workdir, {
        "CERTFLOW_ADMIN_TOKEN": ADMIN_TOKEN, "CERTFLOW_LOG_LEVEL": "warn",
        "CERTFLOW_PUBLIC_URL": public_url, "CERTFLOW_BASE_PATH": f"{public_url}/certs", **settings,
    })
    worker = deployment.start_worker()
    proxy = TlsProxy(proxy_port, worker.web_port, cert, key)
    proxy.start()
    did = KeyRing.load(workdir / "signing-keys.json").current.did
    (workdir / "topic-prefix").write_text(json.dumps(deployment.settings["CERTFLOW_TOPIC_PREFIX"]))
    return deployment, proxy, Service(public_url, cert, did)


@pytest.fixture(scope="module")
def service(broker, tmp_path_factory) -> Iterator[Service]:
    deployment, proxy, running = start_deployment(
        broker, tmp_path_factory.mktemp("vcapi"), CERTFLOW_ISSUER_API_TOKEN=ISSUER_TOKEN)
    try:
        yield running
    finally:
        proxy.stop()
        deployment.stop()


def badge(issuer: str) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2", OB_V3_CONTEXT],
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Test Academy"},
        "validFrom": "2026-01-01T00:00:00Z",
        "name": "Data basics",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "https://example.org/achievements/data-basics", "type": ["Achievement"],
                "name": "Data basics", "description": "Completed the data basics course.",
                "criteria": {"narrative": "Passed every assessment."},
            },
        },
    }


def issue(service: Service) -> tuple[dict[str, Any], str]:
    """A credential issued through the API, and its registry id (from Location)."""
    status, body, headers = service.call("POST", "/credentials/issue", {"credential": badge(service.did)},
                                         token=ISSUER_TOKEN)
    assert status == 201, body
    return body["verifiableCredential"], headers["Location"].rsplit("/", 1)[-1]


def wait_stored(service: Service, registry_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = service.call("GET", f"/certs/{registry_id}")
        if status == 200:
            return body
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.3)


def test_issue_adds_a_status_entry_and_keeps_the_subject(service: Service) -> None:
    credential, registry_id = issue(service)

    assert credential["credentialSubject"] == badge(service.did)["credentialSubject"]
    assert credential["id"] == f"urn:uuid:{registry_id}"
    entry = credential["credentialStatus"]
    assert entry["type"] == "BitstringStatusListEntry" and entry["statusPurpose"] == "revocation"
    assert entry["statusListCredential"].startswith(f"{service.url}/status/a")
    assert credential["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    stored = wait_stored(service, registry_id)
    assert stored["status"] == "active" and stored["verification"]["verified"], stored
    assert service.call("GET", f"/certs/{registry_id}.svg")[0] == 404
    # The exported copy carries a proof set: JCS and RDFC.
    suites = {proof["cryptosuite"] for proof in stored["credential"]["proof"]}
    assert suites == {"eddsa-jcs-2022", "eddsa-rdfc-2022"}
    list_status, status_list, _ = service.call("GET", "/status/" + entry["statusListCredential"].rsplit("/", 1)[1])
    assert list_status == 200 and status_list["id"] == entry["statusListCredential"]


def test_two_credentials_get_different_status_slots(service: Service) -> None:
    first, _ = issue(service)
    second, _ = issue(service)
    slot = lambda c: (c["credentialStatus"]["statusListCredential"], c["credentialStatus"]["statusListIndex"])  # noqa: E731
    assert slot(first) != slot(second)


def test_issue_refusals(service: Service) -> None:
    body = {"credential": badge(service.did)}
    assert service.call("POST", "/credentials/issue", body)[0] == 401
    assert service.call("POST", "/credentials/issue", body, token=ADMIN_TOKEN)[0] == 401
    status, answer, _ = service.call("POST", "/credentials/issue", raw=b"{not json", token=ISSUER_TOKEN)
    assert status == 400, answer
    status, answer, _ = service.call("POST", "/credentials/issue", {"credential": "x"}, token=ISSUER_TOKEN)
    assert status == 400 and answer["errors"], answer
    broken = badge(service.did)
    del broken["credentialSubject"]
    status, answer, _ = service.call("POST", "/credentials/issue", {"credential": broken}, token=ISSUER_TOKEN)
    assert status == 422 and answer["errors"], answer
    other = badge("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
    status, answer, _ = service.call("POST", "/credentials/issue", {"credential": other}, token=ISSUER_TOKEN)
    assert status == 422, answer


def test_verify_then_tamper_then_revoke(service: Service) -> None:
    credential, registry_id = issue(service)
    wait_stored(service, registry_id)
    status, answer, _ = service.call("POST", "/credentials/verify", {"verifiableCredential": credential})
    assert status == 200 and answer["verified"], answer

    tampered = copy.deepcopy(credential)
    tampered["credentialSubject"]["achievement"]["name"] = "Rocket science"
    status, answer, _ = service.call("POST", "/credentials/verify", {"verifiableCredential": tampered})
    assert status == 400 and not answer["verified"]
    assert any(error["check"] == "proof" for error in answer["errors"]), answer

    status, answer, _ = service.call("POST", f"/certs/{registry_id}/revoke", {"reason": "test"},
                                     token=ADMIN_TOKEN)
    assert status == 202, answer
    deadline = time.monotonic() + 60
    while True:
        status, answer, _ = service.call("POST", "/credentials/verify", {"verifiableCredential": credential})
        if status == 400:
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)
    assert [error["check"] for error in answer["errors"]] == ["credentialStatus"], answer


def node(*arguments: str, stdin: Any = None, cafile: Path | None = None) -> tuple[int, dict[str, Any]]:
    executable = shutil.which("node")
    if executable is None or not (INTEROP / "node_modules").exists():
        pytest.fail("needs node and tests/interop/node_modules (`make node` runs npm ci in tests/interop)")
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin"}
    if cafile is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(cafile)
    ran = subprocess.run([executable, *arguments], cwd=INTEROP, capture_output=True, text=True, timeout=180,
                         input=None if stdin is None else json.dumps(stdin), env=env, check=False)
    try:
        return ran.returncode, json.loads(ran.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"{arguments}: {ran.stdout[-2000:]} {ran.stderr[-2000:]}") from None


def test_signed_presentations_verify_and_a_wrong_challenge_does_not(service: Service) -> None:
    credential, registry_id = issue(service)
    wait_stored(service, registry_id)
    options = {"challenge": "c-123", "domain": "127.0.0.1"}
    # Digital Bazaar's wallet signs a DIDAuth presentation (no credentials).
    request = {"verifiablePresentationRequest": {"query": [{"type": "DIDAuthentication"}], **options}}
    code, signed = node("wallet.mjs", "sign", stdin=request)
    assert code == 0, signed
    status, answer, _ = service.call("POST", "/presentations/verify",
                                     {"verifiablePresentation": signed["verifiablePresentation"], "options": options})
    assert status == 200 and answer["verified"] and answer["holder"] == signed["holder"], answer

    # A did:key holder presents the API-issued credential.
    holder = SigningKey.generate()
    presentation = sign({
        "@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiablePresentation"],
        "holder": holder.did, "verifiableCredential": [credential],
    }, holder, created=dt.datetime.now(dt.UTC), proof_purpose=AUTHENTICATION, **options)
    status, answer, _ = service.call("POST", "/presentations/verify",
                                     {"verifiablePresentation": presentation, "options": options})
    assert status == 200 and answer["verified"], answer
    assert answer["credentialResults"][0]["verified"]
    status, answer, _ = service.call("POST", "/presentations/verify", {
        "verifiablePresentation": presentation, "options": {**options, "challenge": "other"}})
    assert status == 400 and not answer["verified"], answer


def test_a_wallet_claims_a_credential_once_and_both_verifiers_accept_it(service: Service) -> None:
    credential, registry_id = issue(service)
    wait_stored(service, registry_id)
    assert service.call("POST", f"/certs/{registry_id}/exchanges", {})[0] == 401
    assert service.call("POST", f"/certs/{registry_id}/exchanges?token=1.forged", {})[0] == 401
    status, offer, _ = service.call("POST", f"/certs/{registry_id}/exchanges", {}, token=ADMIN_TOKEN)
    assert status == 201, offer
    assert offer["exchangeUrl"].startswith(f"{service.url}/exchanges/{registry_id}.")
    assert offer["deepLink"].startswith("https://lcw.app/request.html?")
    assert offer["chapi"]["web"]["VerifiablePresentation"]["interact"]["service"][0]["serviceEndpoint"] \
        == offer["exchangeUrl"]

    code, wallet = node("wallet.mjs", "exchange", offer["exchangeUrl"], cafile=service.cafile)
    assert code == 0 and wallet["verified"] and wallet["bound"], wallet
    claimed = wallet["credential"]
    assert claimed["credentialSubject"]["id"] == wallet["holder"]
    assert claimed["credentialStatus"] == credential["credentialStatus"]

    list_url = claimed["credentialStatus"]["statusListCredential"]
    _, status_list, _ = service.call("GET", "/status/" + list_url.rsplit("/", 1)[1])
    code, verdict = node("verify.mjs", stdin={"credential": claimed, "documents": {list_url: status_list}})
    assert code == 0 and verdict["verified"] and verdict["revoked"] is False, verdict
    code, verdict = node("verify_dcc.mjs", stdin=claimed)
    assert code == 0 and verdict["signature"] == "valid", verdict

    path = "/exchanges/" + offer["exchangeUrl"].rsplit("/", 1)[1]
    status, answer, _ = service.call("POST", path, {})
    assert status == 410, answer
    code, again = node("wallet.mjs", "exchange", offer["exchangeUrl"], cafile=service.cafile)
    assert code != 0, again


def test_an_unknown_exchange_is_404(service: Service) -> None:
    status, _, _ = service.call("POST", "/exchanges/nothing." + "A" * 32, {})
    assert status == 404


def test_without_the_issuer_token_setting_the_route_does_not_exist(broker, tmp_path_factory) -> None:
    deployment, proxy, running = start_deployment(broker, tmp_path_factory.mktemp("vcapi-off"))
    try:
        status, _, _ = running.call("POST", "/credentials/issue", {"credential": badge(running.did)},
                                    token=ISSUER_TOKEN)
        assert status == 404
    finally:
        proxy.stop()
        deployment.stop()


def test_a_learner_makes_an_exchange_for_their_own_certificate_with_their_link_token(
    service: Service, broker, tmp_path_factory
) -> None:
    # A certificate as the registry keeps it (only what the registry and the exchange
    # read): the learner's id, and the credential; kept through the VC-API's topic, the
    # one way into the registry from outside a worker.
    ring_path = Path(service.cafile).parent / "signing-keys.json"
    key = KeyRing.load(ring_path).current
    status, body, _ = service.call("POST", "/credentials/issue", {"credential": badge(service.did)},
                                   token=ISSUER_TOKEN)
    assert status == 201, body
    certificate_id = str(uuid.uuid4())
    record = {"id": certificate_id, "recipient": {"id": "learner-7", "name": "Asha"},
              "certificate": body["verifiableCredential"], "verifyUrl": f"{service.url}/certs/{certificate_id}"}
    topics = TopicNames(json.loads((Path(service.cafile).parent / "topic-prefix").read_text()))
    asyncio.run(produce(broker.url, topics.vcapi_issued,
                        [(certificate_id.encode(), json.dumps(record).encode())]))
    wait_stored(service, certificate_id)
    secret = derive_link_secret(key.private_key_multibase)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    path = f"/certs/{certificate_id}/exchanges?token="

    status, _, _ = service.call("POST", path + learner_token("learner-8", secret, expires), {})
    assert status == 401
    status, _, _ = service.call("POST", path + learner_token("learner-7", secret, dt.datetime(2020, 1, 1, tzinfo=dt.UTC)), {})
    assert status == 401
    status, answer, _ = service.call("POST", path + learner_token("learner-7", secret, expires), {})
    assert status == 201, answer
    # The learner page's "Add to wallet" button posts as a browser: the claim page.
    page = urllib.request.Request(service.url + path + learner_token("learner-7", secret, expires),
                                  data=b"", method="POST", headers={"Accept": "text/html"})
    with urllib.request.urlopen(page, context=service.context, timeout=60) as shown:
        html = shown.read().decode()
    assert shown.status == 201 and "Open in my wallet" in html and "data:image/png;base64," in html
    status, answer, _ = service.call("POST", "/exchanges/" + answer["exchangeId"], {})
    assert status == 200 and answer["verifiablePresentationRequest"]["domain"] == "127.0.0.1", answer
