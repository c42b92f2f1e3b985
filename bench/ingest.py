"""Ingest throughput, in one run on a local stack of its own (Postgres, the local Kafka-protocol broker,
SeaweedFS S3, and the ingest service as `python -m services.ingest`):

- baseline: a raw aiokafka producer (the platform's producer settings) sending prediction-sized
  messages as fast as it can;
- `predictions.raw` -> `predictions`: raw messages published, until every resulting event is read back;
- the monitor endpoint, one prediction per request (concurrent clients) and 500 per batch request.

Predictions name their image by object key (ingest trusts a content-addressed key and never fetches
it), so the figures measure ingest, not the image store; one more figure sends the image bytes, which
ingest decodes, describes and stores in the local S3 (SeaweedFS).

Usage: .venv/bin/python -m bench.ingest [--raw 20000] [--single 3000] [--batch 20000] [--with-images 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import orjson
from PIL import Image

from bench.local_stack import detection_deployment, local_stack
from cvloop.stack.process import read_pid
from schemas.events import RawPrediction, RoleResult
from schemas.local_stack import LOCAL_HOST
from schemas.predictions import DetectionPrediction
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import objects
from services.common.kafka.consumer import create_consumer
from services.common.kafka.producer import create_producer
from services.common.settings import Settings

CONCURRENCY = 16
BATCH_ITEMS = 500
BATCH_CONCURRENCY = 2
# The producers' batches: Kafka producers pushing thousands of messages a second use large ones (each
# fetch from librdkafka's mock brings one batch; on tansu they send one record per batch).
PRODUCER_BATCH_BYTES = 256 * 1024
PREDICTION = DetectionPrediction(
    boxes=[(4.0, 4.0, 30.0, 40.0), (10.0, 2.0, 50.0, 20.0), (0.0, 0.0, 8.0, 8.0)],
    classes=["car", "person", "sign"],
    scores=[0.92, 0.61, 0.12],
)


def image_key() -> str:
    sha = hashlib.sha256(os.urandom(16)).hexdigest()
    return f"images/{sha[:2]}/{sha}.png"


async def uploaded_keys(settings: Settings, project_id: UUID, count: int) -> list[str]:
    """Image keys recorded as the project's uploads, which ingest requires of a key (their bytes are never
    read: ingest only passes keys on)."""
    keys = [image_key() for _ in range(count)]
    pool = await open_pool(settings.database_url)
    try:
        await objects.record(pool, project_id, keys)
    finally:
        await pool.close()
    return keys


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def fields(**image: str) -> dict[str, Any]:
    return {
        **image,
        "width": 64,
        "height": 48,
        "champion": {"prediction": PREDICTION.model_dump(mode="json"), "latency_ms": 11.5},
        "shadow": {"prediction": PREDICTION.model_dump(mode="json"), "latency_ms": 14.0},
        "source": "bench",
        "tags": ["bench"],
    }


async def setup(settings: Settings) -> tuple[UUID, str, UUID]:
    pool = await open_pool(settings.database_url)
    try:
        return await detection_deployment(pool, [Scope.WRITE], confidence_threshold=0.5)
    finally:
        await pool.close()


async def producer_baseline(settings: Settings, count: int, size: int) -> float:
    """Messages/s of a bare aiokafka producer with the platform's settings, nothing else in the way."""
    producer = create_producer(settings, max_batch_size=PRODUCER_BATCH_BYTES)
    await producer.start()
    payload = os.urandom(size // 2).hex().encode()[:size]
    try:
        started = time.perf_counter()
        futures = [await producer.send(str(Topic.JOBS), payload, key=b"bench") for _ in range(count)]
        await asyncio.gather(*futures)
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


def raw_message(deployment: UUID, image_key: str) -> bytes:
    return RawPrediction(
        deployment_id=deployment,
        image_object_key=image_key,
        width=64,
        height=48,
        champion=RoleResult(prediction=PREDICTION, latency_ms=11.5),
        shadow=RoleResult(prediction=PREDICTION, latency_ms=14.0),
        source="bench",
    ).to_bytes()


async def raw_to_predictions(settings: Settings, deployment: UUID, keys: list[str]) -> float:
    """Predictions/s from the first raw message sent to the last resulting event read on `predictions`."""
    count = len(keys)
    messages = [raw_message(deployment, key) for key in keys]
    reader = create_consumer(settings, f"bench-{uuid4()}", str(Topic.PREDICTIONS), auto_offset_reset="latest")
    await reader.start()
    await reader.getmany(timeout_ms=1000)  # joined and positioned at the end before anything is sent
    producer = create_producer(settings, max_batch_size=PRODUCER_BATCH_BYTES)
    await producer.start()
    key = str(deployment).encode()
    try:
        started = time.perf_counter()
        sends = [await producer.send(str(Topic.PREDICTIONS_RAW), m, key=key) for m in messages]
        seen = 0
        async with asyncio.timeout(600):
            while seen < count:
                batches = await reader.getmany(timeout_ms=500)
                seen += sum(r.key == key for records in batches.values() for r in records)
        elapsed = time.perf_counter() - started
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
        await reader.stop()
    return count / elapsed


class Connection:
    """A lean HTTP/1.1 keep-alive client (POST, JSON answers with Content-Length, as uvicorn sends them),
    so the clients sharing this machine's two cores with the server cost as little CPU as they can."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        self.reader, self.writer, self.head = reader, writer, head

    @classmethod
    async def open(cls, port: int, path: str, key: str) -> Connection:
        reader, writer = await asyncio.open_connection(LOCAL_HOST, port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {LOCAL_HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        return cls(reader, writer, head)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        self.writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(body), body))
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def http_rate(
    port: int,
    path: str,
    key: str,
    bodies: list[bytes],
    concurrency: int,
    per_body: int,
    expect: Callable[[int, bytes], bool],
) -> float:
    """Predictions/s posting `bodies` (each holding `per_body` predictions) over `concurrency` connections."""
    queue = list(reversed(bodies))
    failures: list[str] = []
    connections = [await Connection.open(port, path, key) for _ in range(concurrency)]

    async def worker(connection: Connection) -> None:
        while queue:
            status, answer = await connection.post(queue.pop())
            if not expect(status, answer):
                failures.append(f"{status} {answer[:200]!r}")

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return len(bodies) * per_body / elapsed


def _created(status: int, _: bytes) -> bool:
    return status == 201


def _all_created(status: int, answer: bytes) -> bool:
    return status == 200 and all(r["status"] == 201 for r in orjson.loads(answer)["results"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux /proc): what ingest spent, whatever else ran."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, settings: Settings) -> None:
    project_id, key, deployment = await setup(settings)
    keys = iter(await uploaded_keys(settings, project_id, args.raw + args.single + args.batch))
    ingest_pid = read_pid(settings.state_path / "ingest")
    assert ingest_pid is not None
    port, path = settings.ingest_port, f"/v1/deployments/{deployment}/predictions"
    sample = orjson.dumps(fields(image_object_key=image_key()))
    print(f"ingest benchmark: predictions with 3 boxes and a shadow; monitor bodies ~{len(sample)} bytes")

    baseline = await producer_baseline(settings, args.raw or 20_000, 1400)
    results: list[tuple[str, float, float | None, float | None]] = [
        ("raw aiokafka producer (baseline)", baseline, None, None)
    ]

    async def measure(name: str, count: int, job: Awaitable[float]) -> None:
        used, client = cpu_seconds(ingest_pid), time.process_time()
        rate = await job
        ingest_cpu = (cpu_seconds(ingest_pid) - used) / count * 1e6
        results.append((name, rate, ingest_cpu, (time.process_time() - client) / count * 1e6))

    if args.raw:
        size = len(raw_message(deployment, image_key()))
        await measure(
            f"predictions.raw -> predictions ({args.raw} messages of {size} B)",
            args.raw,
            raw_to_predictions(settings, deployment, [next(keys) for _ in range(args.raw)]),
        )
    if args.single:
        singles = [orjson.dumps(fields(image_object_key=next(keys))) for _ in range(args.single)]
        await measure(
            f"HTTP single, object key ({args.single} requests, {args.clients} clients)",
            args.single,
            http_rate(port, path, key, singles, args.clients, 1, _created),
        )
    if args.batch:
        batches = [
            orjson.dumps({"items": [fields(image_object_key=next(keys)) for _ in range(BATCH_ITEMS)]})
            for _ in range(args.batch // BATCH_ITEMS)
        ]
        requests = f"{len(batches)} requests, {BATCH_CONCURRENCY} clients"
        await measure(
            f"HTTP batch of {BATCH_ITEMS}, object keys ({requests})",
            len(batches) * BATCH_ITEMS,
            http_rate(port, f"{path}:batch", key, batches, BATCH_CONCURRENCY, BATCH_ITEMS, _all_created),
        )
    if args.with_images:
        bodies = [
            orjson.dumps(fields(image_base64=base64.b64encode(png(seed)).decode()))
            for seed in range(args.with_images)
        ]
        await measure(
            f"HTTP single, image bytes into S3 ({args.with_images} requests, {args.clients} clients)",
            args.with_images,
            http_rate(port, path, key, bodies, args.clients, 1, _created),
        )

    print("CPU columns: microseconds of CPU per prediction spent by the ingest process and by this one")
    print("(the clients: HTTP or Kafka producer and reader), measured over each path's run.")
    print(f"{'path':<80} {'predictions/s':>13} {'/ baseline':>10} {'ingest CPU':>10} {'client CPU':>10}")
    for name, rate, ingest_cpu, client_cpu in results:
        cpus = [f"{cpu:,.0f}" if cpu is not None else "-" for cpu in (ingest_cpu, client_cpu)]
        print(f"{name:<80} {rate:>13,.0f} {rate / baseline:>10.3f} {cpus[0]:>10} {cpus[1]:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--with-images", type=int, default=300)
    parser.add_argument("--clients", type=int, default=CONCURRENCY, help="concurrent single-request clients")
    args = parser.parse_args()
    with local_stack("ingest", ["postgres", "kafka", "s3", "ingest"]) as settings:
        asyncio.run(run(args, settings))


if __name__ == "__main__":
    main()
