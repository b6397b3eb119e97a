"""`make demo`: reference data and Sunbird issue requests in, certificates out.

Starts a local Apache Kafka broker (one KRaft node) and one worker (127.0.0.1 only, stopped by PID at the
end), loads the reference data in demo/reference/ with `certflow load` (two course
batches and learners with Hindi, Tamil, Bengali, Urdu, Gujarati, Telugu and
XML-special names), sends the issue requests in demo/events/ (one naming learners,
one for a whole batch), prints every decision, writes each certificate to out/ as `<name>-<id>.svg`,
`.pdf` (rendered by the worker) and `.json` (record and signed credential), checks
each QR code with zxing-cpp's reader, verifies one certificate with `certflow
verify`, and measures end-to-end throughput with a generated batch.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import zxingcpp
from PIL import Image

from certflow.kafka import collect_json, ensure_topics, produce
from certflow.local import LocalBroker, LocalWorker, wait_for_reference
from certflow.settings import Settings
from certflow.synthetic import issue_requests, load_batch
from certflow.topics import TopicNames

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
PARTITIONS = 4
#: The consumer group of the demo's worker (its reference data is applied when the group has
#: committed every record).
APP_ID = Settings().app_id
BULK_BATCH = "0140000000000000099"


def web_port() -> int:
    """6066 (the default basePath points there) unless something already uses it."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6066)) != 0:
            return 6066
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def qr_content(svg: str) -> str | None:
    """What a phone reads from the certificate's QR code (zxing-cpp's reader)."""
    # Every inline PNG is tried: signatures are PNGs too (SVG images are refused).
    for match in re.finditer(r"data:image/png;base64,([A-Za-z0-9+/=]+)", svg):
        barcodes = zxingcpp.read_barcodes(Image.open(io.BytesIO(base64.b64decode(match.group(1)))))
        if barcodes:
            return barcodes[0].text
    return None


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "certificate"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--bulk", type=int, default=2000, help="learners in the throughput run")
    args = parser.parse_args()

    workdir = ROOT / ".certflow" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    topics = TopicNames("")
    requests = [orjson.loads(path.read_bytes()) for path in sorted((DEMO / "events").glob("*.json"))]
    request_ids = {request["mid"] for request in requests}

    with LocalBroker(workdir / "broker") as broker:
        print(f"broker   {broker.url}  ({broker.engine}, pid {broker.pid})")
        asyncio.run(ensure_topics(broker.url, topics.all(), partitions=PARTITIONS))
        keys = workdir / "signing-keys.json"
        print(f"$ certflow keys generate --file {keys.relative_to(ROOT)}")
        subprocess.run([sys.executable, "-m", "certflow", "keys", "generate", "--file", str(keys)],
                       cwd=ROOT, check=True, capture_output=True)
        port = web_port()
        settings = {
            **broker.client_settings(),
            "CERTFLOW_PARTITIONS": str(PARTITIONS),
            "CERTFLOW_WEB_PORT": str(port),
            "CERTFLOW_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CERTFLOW_BASE_PATH": f"http://127.0.0.1:{port}/certs",
            "CERTFLOW_SIGNING_KEYS_FILE": str(keys),
            "CERTFLOW_LOG_LEVEL": "warn",
        }
        with LocalWorker(settings, workdir=workdir) as worker:
            print(f"worker   {worker.web_url}  (pid {worker.pid}, log {worker.log_path})\n")
            env = {**os.environ, **broker.client_settings(), "CERTFLOW_PARTITIONS": str(PARTITIONS)}
            for kind in ("batches", "learners", "enrolments", "scores"):
                path = (DEMO / "reference" / f"{kind}.jsonl").relative_to(ROOT)
                print(f"$ certflow load {kind} {path}")
                subprocess.run([sys.executable, "-m", "certflow", "load", kind, str(path)],
                               cwd=ROOT, env=env, check=True)
            # Until the worker has applied every reference record and knows both batches.
            wait_for_reference(broker.url, APP_ID, topics, [worker], batches=2)

            for request in requests:
                print(f"$ certflow send issue.certificate.request  # {request['mid']}")
            asyncio.run(produce(broker.url, topics.issue_request, [(None, orjson.dumps(r)) for r in requests]))
            # 9 learners × 2 templates, and the 3 learners of the whole-batch request.
            decisions = asyncio.run(collect_json(
                broker.url, topics.decisions, 21, lambda d: d["requestId"] in request_ids
            ))
            print(f"\n{len(decisions)} decisions (certificate.decisions):")
            for d in sorted(decisions, key=lambda d: (d["courseId"], d["userId"], d["certificateName"])):
                outcome = "issued" if d["decision"] == "issued" else f"skipped: {d['reason']}"
                print(f"  {d['userId']:<20} {d['certificateName']:<32} {outcome}")
            wanted = sum(1 for d in decisions if d["decision"] == "issued")
            issued = asyncio.run(collect_json(broker.url, topics.certificate_issued, wanted))

            print(f"\n{len(issued)} certificates in {args.out}/:")
            all_scan = True
            for record in issued:
                stem = f"{slug(record['certificateName'])}-{record['id']}"
                (args.out / f"{stem}.svg").write_text(record["svg"], encoding="utf-8")
                document = {key: value for key, value in record.items() if key != "svg"}
                (args.out / f"{stem}.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
                status, pdf = worker.get(f"/certs/{record['id']}.pdf")
                if status == 200:
                    (args.out / f"{stem}.pdf").write_bytes(pdf)
                scanned = qr_content(record["svg"]) == record["verifyUrl"]
                all_scan &= scanned
                print(f"  {record['recipient']['name']:<26} {record['course']['name']:<26} "
                      f"{stem}.svg|.pdf  {'QR ok' if scanned else 'QR WRONG'}")
            sample = issued[0]
            print(f"\nverify one: {sample['verifyUrl']} (a page in a browser, JSON for programs)")
            print(f"$ certflow verify {sample['verifyUrl']}")
            # As this deployment's operator: its keys are the trusted issuers, and its
            # status lists are on its public URL, which is loopback in the demo.
            verifier = {**env, "CERTFLOW_SIGNING_KEYS_FILE": str(keys),
                        "CERTFLOW_PUBLIC_URL": settings["CERTFLOW_PUBLIC_URL"],
                        "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true"}
            verified = subprocess.run([sys.executable, "-m", "certflow", "verify", sample["verifyUrl"]],
                                      cwd=ROOT, env=verifier, capture_output=True, text=True)
            print(verified.stderr.strip())

            if args.bulk:
                ids = load_batch(broker.url, topics, course="do_demo_bulk", batch=BULK_BATCH,
                                 learners=args.bulk, prefix="bulk")
                [request] = issue_requests("do_demo_bulk", BULK_BATCH, ids, chunk=len(ids), mid="LP.demo-bulk")
                wait_for_reference(broker.url, APP_ID, topics, [worker], batches=3)
                before = time.perf_counter()
                asyncio.run(produce(broker.url, topics.issue_request, [(None, request)]))
                done = asyncio.run(collect_json(
                    broker.url, topics.certificate_issued, args.bulk,
                    lambda r: r["batchId"] == BULK_BATCH,
                ))
                elapsed = time.perf_counter() - before
                print(f"\nthroughput: one issue request for {args.bulk} learners → {len(done)} certificates "
                      f"in {elapsed:.2f} s = {len(done) / elapsed:.0f} certificates/s end to end "
                      f"(one worker, {PARTITIONS} partitions, broker on the same 2-core machine)")
            print(f"\nworker /stats: {worker.get('/stats')[1].decode()}")
    print(f"\nopen {args.out}/*.svg in a browser; broker and worker stopped.")
    return 0 if len(issued) == wanted and wanted and all_scan else 1


if __name__ == "__main__":
    sys.exit(main())
