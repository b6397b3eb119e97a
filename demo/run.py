"""`make demo`: a broker, a worker, sample Sunbird events in, certificates out.

Starts the embedded broker and one worker (both on 127.0.0.1, stopped by PID at the
end), sends the events in demo/events/ (Sunbird's own test events plus a few with
Hindi, Tamil, Bengali, Urdu and XML-special names), writes every certificate to
out/ as `<name>-<id>.svg` and `.json`, and then measures the worker's throughput
with a burst of generated events.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import re
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path

import orjson
import zxingcpp
from PIL import Image

from certflow.kafka import collect_json, ensure_topics, produce
from certflow.local import LocalBroker, LocalWorker
from certflow.settings import TopicNames

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "demo" / "events"
#: Where Sunbird's test events say their template is; the demo serves it locally.
SUNBIRD_TEMPLATE = "https://ntpstagingall.blob.core.windows.net/user/cert/File-01311849840255795242.svg"
PARTITIONS = 4


def web_port() -> int:
    """6066 (the basePath in the demo events) unless something already uses it."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6066)) != 0:
            return 6066
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def qr_content(svg: str) -> str | None:
    """What a phone reads from the certificate's QR code (zxing-cpp's reader)."""
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", svg)
    if not match:
        return None
    barcodes = zxingcpp.read_barcodes(Image.open(io.BytesIO(base64.b64decode(match.group(1)))))
    return barcodes[0].text if barcodes else None


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "certificate"


def bulk_events(count: int) -> list[bytes]:
    template = orjson.loads((EVENTS / "demo_hindi.json").read_bytes())
    events = []
    batch = f"bulk-{uuid.uuid4().hex[:8]}"
    for index in range(count):
        template["edata"]["related"]["batchId"] = batch
        template["edata"]["data"] = [
            {"recipientId": f"bulk-{index:05d}", "recipientName": f"शिक्षार्थी {index}"}
        ]
        events.append(orjson.dumps(template))
    return events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--bulk", type=int, default=2000, help="events for the throughput run")
    args = parser.parse_args()

    workdir = ROOT / ".certflow" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    topics = TopicNames("")

    files = sorted(EVENTS.glob("*.json"))
    samples = [path.read_bytes() for path in files]
    expected = sum(
        len(event["edata"].get("data", []))
        for event in map(orjson.loads, samples)
        if event["edata"].get("svgTemplate")
    )

    with LocalBroker(workdir / "broker") as broker:
        print(f"broker  {broker.url}  (pid {broker.pid})")
        asyncio.run(ensure_topics(broker.url, topics.all(), partitions=PARTITIONS))
        settings = {
            "CERTFLOW_BROKER": broker.url,
            "CERTFLOW_PARTITIONS": str(PARTITIONS),
            "CERTFLOW_WEB_PORT": str(web_port()),
            "CERTFLOW_LOG_LEVEL": "warning",
            "CERTFLOW_TEMPLATE_REWRITES": orjson.dumps({SUNBIRD_TEMPLATE: "course-completion.svg"}).decode(),
        }
        with LocalWorker(settings, workdir=workdir) as worker:
            print(f"worker  {worker.web_url}  (pid {worker.pid}, log {worker.log_path})")
            asyncio.run(produce(broker.url, topics.generate_request, [(None, e) for e in samples]))
            print(f"sent    {len(samples)} sample events from {EVENTS.relative_to(ROOT)}/")
            issued = asyncio.run(collect_json(broker.url, topics.certificate_issued, expected))
            failed = asyncio.run(collect_json(broker.url, topics.generate_failed, 1, timeout=5))

            unique = {record["id"]: record for record in issued}
            print(f"\n{len(unique)} certificates in {args.out}/ "
                  f"({len(issued)} issued: Sunbird's EVENT_3 and EVENT_4 certify the same thing, "
                  "so they are one certificate, with one id):")
            for record in unique.values():
                stem = f"{slug(record['course']['name'] or record['certificateName'])}-{record['id']}"
                (args.out / f"{stem}.svg").write_text(record["svg"], encoding="utf-8")
                document = {key: value for key, value in record.items() if key != "svg"}
                (args.out / f"{stem}.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
                scanned = "QR ok" if qr_content(record["svg"]) == record["verifyUrl"] else "QR WRONG"
                print(f"  {record['recipient']['name']:<34} {stem}.svg  {scanned}: {record['verifyUrl']}")
            for record in failed:
                print(f"\nrejected as expected (generate.certificate.failed): "
                      f"{record['errorCode']}: {record['errorMessage']}")

            if args.bulk:
                events = bulk_events(args.bulk)
                before = time.perf_counter()
                asyncio.run(produce(broker.url, topics.generate_request, [(None, e) for e in events]))
                batch = orjson.loads(events[0])["edata"]["related"]["batchId"]
                done = asyncio.run(collect_json(
                    broker.url, topics.certificate_issued, args.bulk, lambda r: r["batchId"] == batch
                ))
                elapsed = time.perf_counter() - before
                print(f"\nthroughput: {len(done)} certificates in {elapsed:.2f} s = "
                      f"{len(done) / elapsed:.0f} certificates/s (one worker, {PARTITIONS} partitions, "
                      "broker on the same 2-core machine)")
            status, stats = worker.get("/stats")
            print(f"\nworker /stats: {stats.decode()}")
    print(f"\nopen {args.out}/*.svg in a browser; broker and worker stopped.")
    all_scan = all(qr_content(r["svg"]) == r["verifyUrl"] for r in issued)
    return 0 if len(issued) == expected and all_scan else 1


if __name__ == "__main__":
    sys.exit(main())
