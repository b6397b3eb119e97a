"""The worker's web API under hostile requests: paths, bodies, tokens, garbage.

Every request goes over a real socket to a real worker; raw paths are sent exactly
as written (``http.client`` does not normalise them), and chunked bodies are written
by hand, so the server cannot know their length in advance.
"""

from __future__ import annotations

import http.client
import select
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from certflow.credentials.document import open_badge_credential
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import sign
from certflow.credentials.status_list import status_entry
from tests.integration.conftest import Deployment
from tests.unit.test_credentials_document import certificate_facts

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "web-admin-token"
METRICS_TOKEN = "web-metrics-token"
MB = 1024 * 1024


#: An issuer this deployment trusts besides its own keys (CERTFLOW_TRUSTED_ISSUERS).
PARTNER = SigningKey.from_seed(bytes(range(32)), created=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def deployment(broker, tmp_path_factory) -> Iterator[Deployment]:
    running = Deployment(broker, tmp_path_factory.mktemp("web"), {
        "CERTFLOW_ADMIN_TOKEN": ADMIN_TOKEN, "CERTFLOW_METRICS_TOKEN": METRICS_TOKEN,
        "CERTFLOW_LOG_LEVEL": "warn", "CERTFLOW_TRUSTED_ISSUERS": PARTNER.did,
    })
    running.start_worker()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def port(deployment: Deployment) -> int:
    return deployment.workers[0].web_port


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in {"Content-Length": str(len(body or b"")), **(headers or {})}.items():
            connection.putheader(name, value.encode("latin-1"))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def json_error(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str]:
    """(status, error code) of an answer that must be a JSON error."""
    status, headers, body = answer
    assert headers["content-type"].startswith("application/json"), (status, headers, body[:200])
    return status, orjson.loads(body)["error"]["code"]


def post_chunked(port: int, path: str, total: int, *, headers: dict[str, str] | None = None
                 ) -> tuple[int, dict[str, str], bytes, int]:
    """POST ``total`` bytes in 64 KB chunks without a Content-Length, stopping as soon
    as the server answers; returns the answer and how many bytes were sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked",
            "Content-Type: application/json"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    chunk = b"%x\r\n%s\r\n" % (65_536, b" " * 65_536)
    sent = 0
    try:
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered: stop talking
            sock.sendall(chunk)
            sent += 65_536
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # it answered and hung up
    response = http.client.HTTPResponse(sock)
    response.begin()
    answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    sock.close()
    return (*answer, sent)


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/certs/../../etc/passwd",
        "/certs/%2e%2e/%2e%2e/etc/passwd",
        "/certs/..%2f..%2fetc%2fpasswd",
        "/certs/%2e%2e%2f%2e%2e%2fetc%2fpasswd.svg",
        "/certs/%252e%252e%252fetc%252fpasswd",
        "/certs/..%5c..%5cetc%5cpasswd",
        "/certs/....//....//etc/passwd.pdf",
        "/status/..%2f..",
        "/status/..%2f..%2fetc%2fpasswd",
        "/status/0-0/../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
    ],
)
def test_no_path_reaches_a_file_and_every_miss_is_a_json_404(port: int, path: str) -> None:
    answer = call(port, "GET", path)

    assert json_error(answer) == (404, "NOT_FOUND") or json_error(answer) == (404, "CERTIFICATE_NOT_FOUND")
    assert b"root:" not in answer[2]


def test_unknown_routes_and_wrong_methods_answer_in_json(port: int) -> None:
    assert json_error(call(port, "GET", "/no/such/route")) == (404, "NOT_FOUND")
    wrong_method = call(port, "DELETE", "/verify")
    assert json_error(wrong_method) == (405, "METHOD_NOT_ALLOWED")
    assert "POST" in wrong_method[1]["allow"] and "GET" in wrong_method[1]["allow"]
    assert json_error(call(port, "DELETE", "/certs/abc")) == (405, "METHOD_NOT_ALLOWED")
    assert json_error(call(port, "GET", "/certs/abc")) == (404, "CERTIFICATE_NOT_FOUND")


@pytest.mark.parametrize("path", ["/table/", "/table/learners/", "/table/learners/learner-1/", "/router/"])
def test_faust_debugging_pages_over_tables_and_the_cluster_are_not_served(port: int, path: str) -> None:
    """``/table/{name}/{key}/`` would read any table's value (learner profiles) for anyone."""
    status, code = json_error(call(port, "GET", path))

    assert (status, code) == (404, "NOT_FOUND")


# --- bodies --------------------------------------------------------------------------------


def test_a_declared_body_over_256_kb_is_refused_before_it_is_read(port: int) -> None:
    answer = call(port, "POST", "/verify", body=b"{" + b" " * 300_000 + b"}")

    assert json_error(answer) == (413, "TOO_LARGE")


@pytest.mark.parametrize("size", [300 * 1024, 20 * MB], ids=["300KB", "20MB"])
def test_a_chunked_body_without_a_length_is_cut_off_at_256_kb(port: int, size: int) -> None:
    status, headers, body, sent = post_chunked(port, "/verify", size)

    assert json_error((status, headers, body)) == (413, "TOO_LARGE")
    # Answered long before the client was done: the server stopped reading at the limit.
    assert size < MB or sent < size


def test_a_chunked_body_under_the_limit_is_read_whole(port: int) -> None:
    status, headers, body, _ = post_chunked(port, "/verify", 128 * 1024)

    assert json_error((status, headers, body)) == (400, "MALFORMED_JSON")  # spaces are not a credential


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"a credential"',
        b'{"verifiableCredential": []}',
        b'{"verifiableCredential": "eyJhbGciOi..."}',
        b'{"verifiableCredential": null}',
    ],
)
def test_a_presented_credential_that_is_not_one_object_is_a_400(port: int, body: bytes) -> None:
    assert json_error(call(port, "POST", "/verify", body=body)) == (400, "MALFORMED_JSON")


@pytest.mark.parametrize(
    "credential",
    [
        {},
        {"proof": "x", "issuer": 7, "validFrom": 3, "@context": None},
        {"credentialStatus": []},
        {"credentialStatus": {"statusListCredential": "http://x/status/..", "statusListIndex": 5}},
        {"credentialStatus": {"statusListCredential": "http://x/status/0-0", "statusListIndex": 2**62}},
        {"credentialStatus": {"statusListCredential": "http://x/status/0-0", "statusListIndex": -1}},
        {"credentialSubject": {"id": ["a", {"b": None}]}, "type": "OpenBadgeCredential"},
    ],
    ids=["empty", "wrong-types", "status-list", "status-dotdot", "status-huge-index",
         "status-negative-index", "odd-subject"],
)
def test_a_garbage_credential_is_reported_unverified_not_a_crash(port: int, credential: dict) -> None:
    status, _headers, body = call(port, "POST", "/verify", body=orjson.dumps(credential))

    assert status == 200, body[:300]
    result = orjson.loads(body)
    assert result["verified"] is False
    assert any(not check["ok"] for check in result["checks"])


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth  # 100,000 levels in 200 KB, under the body limit


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_a_deeply_nested_credential_is_a_400_with_a_reason_not_a_500(port: int, depth: int) -> None:
    """orjson reads 1000 levels; canonicalising them for the signature check recursed
    past Python's limit and the view answered 500. The proof names the deployment's
    own key (public, on every credential), so the check gets as far as canonicalising."""
    signed = orjson.loads(call(port, "GET", "/status/0-0")[2])
    head = orjson.dumps({"@context": signed["@context"], "proof": signed["proof"]})
    body = head[:-1] + b',"credentialSubject":' + _deep(depth) + b"}"
    status, headers, answer = call(port, "POST", "/verify", body=body)
    assert json_error((status, headers, answer)) == (400, "MALFORMED_JSON"), answer[:300]
    assert "nested deeper than 64 levels" in orjson.loads(answer)["error"]["message"]


def test_a_status_list_credential_is_not_a_valid_certificate(port: int) -> None:
    """The worker's own signed status list: genuine, trusted issuer, but not a certificate."""
    status, _, published = call(port, "GET", "/status/0-0")
    assert status == 200, published[:300]
    status, _, body = call(port, "POST", "/verify", body=published)
    assert status == 200
    result = orjson.loads(body)
    assert result["verified"] is False
    failed = {check["check"]: check["reason"] for check in result["checks"] if not check["ok"]}
    assert failed == {"format": "a BitstringStatusListCredential, not a certificate (OpenBadgeCredential)"}


def _signed_by(key: SigningKey, **facts) -> bytes:
    facts = {"status": None, "valid_until": None, **facts}
    return orjson.dumps(sign(open_badge_credential(certificate_facts(issuer_id=key.did, **facts)),
                             key, created=datetime.now(UTC)))


def _failures(port: int, body: bytes) -> dict[str, str]:
    status, _, answer = call(port, "POST", "/verify", body=body)
    assert status == 200, answer[:300]
    result = orjson.loads(answer)
    failed = {check["check"]: check["reason"] for check in result["checks"] if not check["ok"]}
    assert result["verified"] is not failed
    return failed


def test_a_credential_signed_by_a_fresh_key_is_an_untrusted_issuer(port: int) -> None:
    forger = SigningKey.generate()
    assert _failures(port, _signed_by(forger)) == {"issuer": f"untrusted issuer {forger.did}"}


def test_a_configured_trusted_issuer_verifies_but_its_status_is_not_read_from_local_lists(port: int) -> None:
    assert _failures(port, _signed_by(PARTNER)) == {}
    # Its list merely looks like one of ours: this deployment holds only its own.
    entry = status_entry("http://127.0.0.1/status/0-0", 7)
    failed = _failures(port, _signed_by(PARTNER, status=entry))
    assert list(failed) == ["status"] and "another issuer's" in failed["status"]


# --- the admin action ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Basic {ADMIN_TOKEN}", ADMIN_TOKEN,
     f"Bearer {ADMIN_TOKEN}x", "Bearer \u00fc\u00df", f"Bearer {ADMIN_TOKEN[:-1]}\u00e9"],
    ids=["none", "empty", "scheme-only", "scheme-space", "wrong", "basic", "no-scheme", "longer",
         "non-ascii", "non-ascii-near-miss"],
)
def test_revoking_without_the_admin_token_is_401_in_json(port: int, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    answer = call(port, "POST", "/certs/some-certificate/revoke", body=b'{"reason": "x"}', headers=headers)

    assert json_error(answer) == (401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[]", (400, "MALFORMED_JSON")),
        (b"{not json", (400, "MALFORMED_JSON")),
        (b'"reason"', (400, "MALFORMED_JSON")),
        (b'{"reason": "' + b"x" * 20_000 + b'"}', (413, "TOO_LARGE")),
    ],
    ids=["array", "not-json", "string", "too-large"],
)
def test_an_admin_revocation_with_a_bad_body_is_a_json_error(
    port: int, body: bytes, expected: tuple[int, str]
) -> None:
    answer = call(port, "POST", "/certs/some-certificate/revoke", body=body,
                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert json_error(answer) == expected


def test_an_admin_revocation_of_an_unknown_certificate_is_a_404(port: int) -> None:
    """Nothing is recorded for an id without a certificate: ids are predictable, and a
    revocation recorded ahead would revoke the certificate once it is issued. (An
    accepted revocation is in test_credentials_flow, which has certificates.)"""
    for body in (b"", b"{}", b'{"reason": 42}'):
        answer = call(port, "POST", "/certs/no-such-certificate/revoke", body=body,
                      headers={"Authorization": f"bearer  {ADMIN_TOKEN} "})
        assert json_error(answer) == (404, "CERTIFICATE_NOT_FOUND"), answer


# --- who may read what ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/learners/learner-1/decisions", "/stats", "/metrics"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {ADMIN_TOKEN}"], ids=["none", "wrong", "basic"])
def test_learners_data_and_operators_routes_need_a_token(port: int, path: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    answer = call(port, "GET", path, headers=headers)

    assert json_error(answer) == (401, "UNAUTHORIZED")
    assert answer[1]["www-authenticate"].startswith("Bearer")
    assert b"learner-1" not in answer[2]


def test_the_metrics_token_reads_stats_and_metrics_but_not_learners(port: int) -> None:
    metrics = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert call(port, "GET", "/stats", headers=metrics)[0] == 200
    status, _headers, body = call(port, "GET", "/metrics", headers=metrics)
    assert status == 200 and b"# TYPE" in body
    assert json_error(call(port, "GET", "/learners/learner-1/decisions", headers=metrics)) == (401, "UNAUTHORIZED")
    assert json_error(call(port, "POST", "/certs/x/revoke", headers=metrics)) == (401, "UNAUTHORIZED")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for path in ("/stats", "/metrics", "/learners/learner-1/decisions"):
        assert call(port, "GET", path, headers=admin)[0] == 200, path


def test_verification_and_probes_need_no_token(port: int) -> None:
    for path in ("/health", "/ready", "/status/0-0"):
        assert call(port, "GET", path)[0] == 200, path
    assert json_error(call(port, "GET", "/certs/unknown")) == (404, "CERTIFICATE_NOT_FOUND")
    assert call(port, "POST", "/verify", body=b"{}")[0] == 200


def test_the_worker_is_still_healthy_after_all_of_it(deployment: Deployment, port: int) -> None:
    assert deployment.workers[0].alive()
    assert call(port, "GET", "/health")[0] == 200
