"""What the SDK costs on top of plain HTTP, in one run on a local stack of its own (Postgres, the
local Kafka-protocol broker, SeaweedFS S3, and the api and ingest services as processes):

- monitor: `deployment.monitor(...)` one prediction per call, against the same JSON bodies posted with a
  bare `httpx.Client` (the baseline); rounds alternate so both see the same machine load;
- the same monitor calls with the network replaced by `httpx.MockTransport` on both sides: the SDK's
  own cost per call (building and checking the body, retries bookkeeping, reading the answer);
- upload: `client.upload(...)` of a model file through the progress-reporting reader, against the same
  multipart upload from a bare `httpx.Client`.

Images are named by content-addressed object keys, recorded as the project's uploads beforehand (ingest
checks that a key is the project's and does not fetch it), so the figure measures the client, not the
image store.

Usage: .venv/bin/python -m bench.sdk [--predictions 600] [--rounds 3] [--upload-mib 32]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx

from cvloop.commands.projects import create_project_with_admin_key
from cvloop.sdk import Client, Deployment
from cvloop.sdk.settings import SdkSettings
from cvloop.stack.kafka import KafkaBroker
from cvloop.stack.postgres import Postgres
from cvloop.stack.s3 import S3Server
from cvloop.stack.service import Api, Ingest
from cvloop.stack.settings import StackSettings, sdk_settings
from schemas.model_version import MODEL_FILE
from schemas.object_keys import ObjectKind, object_key
from schemas.predictions import ClassificationPrediction
from services.common.db.pool import open_pool
from services.common.db.repositories import objects

PREDICTION = ClassificationPrediction(classes=["cat", "dog"], scores=[0.8, 0.2])


def _keys(prefix: str) -> Iterator[str]:
    """Distinct image keys: the same image twice would be a 409, not a logged prediction."""
    n = 0
    while True:
        sha = hashlib.sha256(f"{prefix}-{n}".encode()).hexdigest()
        yield str(object_key(ObjectKind.IMAGES, sha, "image/png"))
        n += 1


async def _record_keys(dsn: str, project_id: UUID, count: int) -> None:
    """The first `count` of `_keys("bench")` become the project's objects, as their uploads would."""
    pool = await open_pool(dsn, max_size=1)
    try:
        await objects.record(pool, project_id, itertools.islice(_keys("bench"), count))
    finally:
        await pool.close()


def _rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def bench_monitor(
    client: Client,
    deployment: Deployment,
    key: str,
    n: int,
    rounds: int,
    transport: httpx.BaseTransport | None = None,
) -> tuple[float, float]:
    keys = _keys("bench")
    raw = httpx.Client(
        base_url=client.ingest.base_url, headers={"Authorization": f"Bearer {key}"}, transport=transport
    )
    path = f"/v1/deployments/{deployment.id}/predictions"
    prediction = PREDICTION.model_dump(mode="json")

    def raw_calls() -> None:
        for _ in range(n):
            body: dict[str, Any] = {
                "image_object_key": next(keys),
                "width": 64,
                "height": 48,
                "champion": {"prediction": prediction, "latency_ms": 5.0},
            }
            raw.post(path, json=body).raise_for_status()

    def sdk_calls() -> None:
        for _ in range(n):
            deployment.monitor(None, 5.0, PREDICTION, image_object_key=next(keys), width=64, height=48)

    raw_rates, sdk_rates = [], []
    for _ in range(rounds):
        raw_rates.append(_rate(n, raw_calls))
        sdk_rates.append(_rate(n, sdk_calls))
    raw.close()
    return max(raw_rates), max(sdk_rates)


def bench_upload(client: Client, key: str, size: int, rounds: int) -> tuple[float, float]:
    raw = httpx.Client(base_url=client.api.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    mib = size / 2**20
    raw_rates, sdk_rates = [], []
    for _ in range(rounds):
        # New bytes for each upload: uploads are content-addressed, a repeat would store nothing.
        files = {"file": (MODEL_FILE, io.BytesIO(os.urandom(size)), "application/octet-stream")}
        started = time.perf_counter()
        raw.post("/v1/uploads", params={"kind": "models"}, files=files).raise_for_status()
        raw_rates.append(mib / (time.perf_counter() - started))

        payload, sent = io.BytesIO(os.urandom(size)), []
        started = time.perf_counter()
        client.upload(payload, "models", sent.append)
        sdk_rates.append(mib / (time.perf_counter() - started))
        assert sum(sent) == size
    raw.close()
    return max(raw_rates), max(sdk_rates)


def bench_client_side(n: int, rounds: int) -> tuple[float, float]:
    """Both sides on httpx.MockTransport answering 201 at once: what is left is the client's own work."""

    def accept(_: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"prediction_id": str(uuid4())})

    transport = httpx.MockTransport(accept)
    with Client("cvl_bench", settings=SdkSettings(), http_transport=transport) as client:
        deployment = Deployment(client, {"id": str(uuid4()), "name": "bench"})
        return bench_monitor(client, deployment, "cvl_bench", n, rounds, transport)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--upload-mib", type=int, default=32)
    args = parser.parse_args()
    offline_raw, offline_sdk = bench_client_side(20 * args.predictions, args.rounds)

    state = Path(tempfile.mkdtemp(prefix="cvloop-bench-sdk-"))
    repo = Path(__file__).resolve().parent.parent
    tools = Path(os.environ.get("CVLOOP_TOOLS_DIR") or repo / ".cvloop" / "tools")
    settings = StackSettings(
        state_dir=state,
        tools_dir_setting=tools,
        port_base=int(os.environ.get("CVLOOP_PORT_BASE", "21320")),
    )
    components = [cls(settings) for cls in (Postgres, KafkaBroker, S3Server, Api, Ingest)]
    try:
        for component in components:
            component.start()
        project, _, key = asyncio.run(create_project_with_admin_key(settings.database_url, "bench"))
        asyncio.run(_record_keys(settings.database_url, project.id, 2 * args.predictions * args.rounds))
        with Client(key, settings=sdk_settings(settings)) as client:
            version = client.create_model("bench").create_version("v1", "classification")
            deployment = client.create_deployment("bench", version, kind="monitoring_only")
            raw_monitor, sdk_monitor = bench_monitor(client, deployment, key, args.predictions, args.rounds)
            raw_upload, sdk_upload = bench_upload(client, key, args.upload_mib * 2**20, args.rounds)
    finally:
        for component in reversed(components):
            component.stop()
        shutil.rmtree(state, ignore_errors=True)

    print(f"monitor, one prediction per call ({args.predictions} calls, best of {args.rounds} rounds):")
    print(f"  baseline bare httpx  {raw_monitor:8.0f} predictions/s")
    print(f"  SDK                  {sdk_monitor:8.0f} predictions/s   ratio {sdk_monitor / raw_monitor:.2f}")
    print(f"the same calls with the network replaced ({20 * args.predictions} calls):")
    print(f"  baseline bare httpx  {offline_raw:8.0f} calls/s")
    print(
        f"  SDK                  {offline_sdk:8.0f} calls/s   ratio {offline_sdk / offline_raw:.2f}", end=""
    )
    print(f"   (SDK's own cost {1e6 / offline_sdk - 1e6 / offline_raw:.0f} us per call)")
    print(f"upload of a {args.upload_mib} MiB model file (best of {args.rounds}):")
    print(f"  baseline bare httpx  {raw_upload:8.1f} MiB/s")
    print(f"  SDK with progress    {sdk_upload:8.1f} MiB/s   ratio {sdk_upload / raw_upload:.2f}")


if __name__ == "__main__":
    main()
