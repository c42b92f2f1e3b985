"""Serving latency and throughput, in one run on a local stack of its own (Postgres, the local
Kafka-protocol broker, SeaweedFS S3, tritonserver with the python backend, and `python -m services.serving`):

- (a) baseline: a direct tritonclient gRPC call of the champion's Triton model, with the input tensor
  made beforehand (no decode, no preprocessing);
- (b) the gateway, champion only: `POST /v1/deployments/{id}/predict` with a PNG digit (decode,
  preprocessing, Triton, postprocessing, answer; the event goes out in the background);
- (c) the gateway, champion + shadow (a different digits model) on the same image.

Each at concurrency 1 and 16: p50, p99 and throughput, then the ratios b/a (and the p50 overhead in
ms at concurrency 1) and c/b (champion p99 with shadow / without at concurrency 16). The images are the
1797 digits rendered as 32x32 PNGs, cycled: serving stores each in S3 once and remembers it, and the
first pass is sent before measuring, so no measured request writes to S3. With --unique every request
sends an image never seen before (a digit with two pixels changed), so every request also stores its
image (in the local S3, sharing the two cores).

Usage: .venv/bin/python -m bench.serving [--requests 2000] [--warmup 200] [--unique]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import numpy as np
import tritonclient.grpc.aio as grpcaio
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import InferInput, InferRequestedOutput

from bench.local_stack import local_stack
from cvloop.demo import registration
from cvloop.demo import seed as demo
from cvloop.demo.digits import digit_png, train_mlp_classifier
from schemas.events import DeploymentChange, DeploymentKind
from schemas.local_stack import LOCAL_HOST
from schemas.predictions import DetectionType
from schemas.topics import Topic
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments
from services.common.domain.images import decode_image
from services.common.domain.preprocess import preprocess
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.serving.model_config import triton_model_name

COMPONENTS = ["postgres", "kafka", "s3", "triton", "serving"]
IMAGES = 1797


@dataclass(frozen=True)
class Figures:
    p50_ms: float
    p99_ms: float
    per_s: float

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:7.3f} ms   p99 {self.p99_ms:7.3f} ms   {self.per_s:8.1f} /s"


def unique_png(number: int) -> bytes:
    """Digit `number % 1797` with two corner pixels set from `number`: a distinct file for each number."""
    pixels = np.asarray(Image.open(io.BytesIO(digit_png(number % IMAGES))).convert("L")).copy()
    pass_number = number // IMAGES
    pixels[0, 0], pixels[0, 1] = pass_number % 256, pass_number // 256 % 256
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def totals(exposition: str) -> dict[tuple[str, ...], float]:
    """Serving's counters by (sample name, deployment, role or outcome): what the breakdowns need."""
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name.startswith("cvloop_serving_") and not sample.name.endswith("_bucket"):
                labels = sample.labels
                key = (
                    sample.name,
                    labels.get("deployment", ""),
                    labels.get("role", labels.get("outcome", "")),
                )
                found[key] = found.get(key, 0.0) + sample.value
    return found


def server_side(
    before: dict[tuple[str, ...], float], after: dict[tuple[str, ...], float], deployment: str
) -> str:
    """Mean time inside serving per request (decode to answer) and of its champion call, over a case."""

    def mean(name: str, role: str = "") -> float:
        count = after.get((f"{name}_count", deployment, role), 0) - before.get(
            (f"{name}_count", deployment, role), 0
        )
        total = after.get((f"{name}_sum", deployment, role), 0) - before.get(
            (f"{name}_sum", deployment, role), 0
        )
        return 1000 * total / count if count else float("nan")

    request = mean("cvloop_serving_request_seconds")
    champion = mean("cvloop_serving_inference_seconds", "champion")
    return f"(inside serving: {request:.3f} ms per request, of which the champion call {champion:.3f} ms)"


async def measure(call: Callable[[int], Awaitable[None]], requests: int, concurrency: int) -> Figures:
    """Run `requests` calls from `concurrency` workers; latency per call, throughput over the run."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for index in counter:
            started = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return Figures(float(p50), float(p99), requests / elapsed)


async def prepare(settings: Settings) -> tuple[demo.Demo, str, str]:
    """The demo deployment (champion only), and one more with a shadow: their ids and the key."""
    served = await demo.seed(settings)
    db = await open_pool(settings.database_url, max_size=2)
    try:
        store = ObjectStore.from_settings(settings)
        shadow = await registration.register_onnx_model(
            db,
            store,
            served.project_id,
            "digits-mlp",
            "1",
            train_mlp_classifier(),
            DetectionType.CLASSIFICATION,
            None,
        )
        found = [
            d for d in await deployments.list_deployments(db, served.project_id) if d.name == "bench-shadow"
        ]
        deployment = (
            found[0]
            if found
            else await deployments.create_deployment(
                db,
                served.project_id,
                "bench-shadow",
                kind=DeploymentKind.SERVED,
                detection_type=DetectionType.CLASSIFICATION,
                champion_model_version_id=served.model_version_id,
            )
        )
        deployment = await deployments.set_shadow(db, served.project_id, deployment.id, shadow)
        async with EventProducer.from_settings(settings) as producer:
            await producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(DeploymentChange.SHADOW_SET))
    finally:
        await db.close()
    return served, str(served.deployment_id), str(deployment.id)


async def run(settings: Settings, requests: int, warmup: int, unique: bool) -> None:
    served, champion_only, with_shadow = await prepare(settings)
    pngs = [digit_png(i) for i in range(IMAGES)]
    sent = itertools.count()
    tensors = [
        preprocess(decode_image(png, settings.max_image_bytes).pixels, demo.train_linear_classifier().io)
        for png in pngs[:64]
    ]
    triton = grpcaio.InferenceServerClient(settings.triton_grpc_url)
    model = triton_model_name(served.model_version_id)
    outputs = [InferRequestedOutput("scores")]

    async def direct(index: int) -> None:
        tensor = tensors[index % len(tensors)]
        request = InferInput("image", list(tensor.shape), "FP32")
        request.set_data_from_numpy(tensor)
        await triton.infer(model, [request], outputs=outputs)

    connector = aiohttp.TCPConnector(limit=32)
    headers = {"Authorization": f"Bearer {served.api_key}", "Content-Type": "image/png"}
    base = f"http://{LOCAL_HOST}:{settings.serving_port}/v1/deployments"
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        answered: list[None] = []  # one per gateway request answered 200

        def image(number: int) -> bytes:
            return unique_png(number) if unique else pngs[number % IMAGES]

        def gateway(deployment: str) -> Callable[[int], Awaitable[None]]:
            url = f"{base}/{deployment}/predict"

            async def call(index: int) -> None:
                async with http.post(url, data=image(next(sent))) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
                answered.append(None)

            return call

        async with asyncio.timeout(120):  # the shadow deployment arrives through the deployments topic
            while True:
                async with http.post(f"{base}/{with_shadow}/predict", data=pngs[0]) as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.2)

        if not unique:  # the first pass over the images stores them (S3 writes in the background)
            await measure(gateway(champion_only), IMAGES, 16)

        cases = {
            "a direct Triton": direct,
            "b gateway": gateway(champion_only),
            "c gateway+shadow": gateway(with_shadow),
        }

        async def metrics() -> dict[tuple[str, ...], float]:
            async with http.get(f"http://{LOCAL_HOST}:{settings.serving_port}/metrics") as response:
                return totals(await response.text())

        def events(found: dict[tuple[str, ...], float], outcome: str) -> float:
            return sum(
                v for (n, _, o), v in found.items() if n == "cvloop_serving_events_total" and o == outcome
            )

        async def settle() -> None:
            """Wait until serving has published the events of every request sent: no background work
            of one case (S3 writes, Kafka) spills into the next."""
            async with asyncio.timeout(300):
                while True:
                    found = await metrics()
                    if events(found, "published") + events(found, "failed") >= len(answered):
                        return
                    await asyncio.sleep(0.1)

        deployment_of = {"b gateway": champion_only, "c gateway+shadow": with_shadow}
        results: dict[tuple[str, int], Figures] = {}
        for concurrency in (1, 16):
            for name, call in cases.items():
                await measure(call, warmup, concurrency)
                await settle()
                before = await metrics()
                results[name, concurrency] = await measure(call, requests, concurrency)
                inside = (
                    server_side(before, await metrics(), deployment_of[name]) if name in deployment_of else ""
                )
                print(f"{name:<17} c={concurrency:<3} {results[name, concurrency]}  {inside}", flush=True)
        await settle()
        final = await metrics()
        published, failed = events(final, "published"), events(final, "failed")
        print(f"prediction events: {published:.0f} published, {failed:.0f} failed")
    await triton.close()

    a1, b1, c1 = (results[n, 1] for n in cases)
    a16, b16, c16 = (results[n, 16] for n in cases)
    print()
    overhead = b1.p50_ms - a1.p50_ms
    print(f"b/a  p50 at c=1:  {b1.p50_ms / a1.p50_ms:6.2f}  (overhead {overhead:.3f} ms; target <= 1.5 ms)")
    print(
        f"b/a  p99 at c=16: {b16.p99_ms / a16.p99_ms:6.2f}  throughput at c=16: {b16.per_s / a16.per_s:.2f}"
    )
    print(
        f"c/b  p99 at c=16: {c16.p99_ms / b16.p99_ms:6.2f}  (target <= 1.10)  "
        f"p50 at c=1: {c1.p50_ms / b1.p50_ms:.2f}"
    )
    print(
        f"gateway at c=16: {b16.per_s:.0f}/s champion only, {c16.per_s:.0f}/s with shadow (target >= 500/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=2000, help="measured requests per case and concurrency"
    )
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--unique", action="store_true", help="a new image for every request")
    args = parser.parse_args()
    with local_stack("serving", COMPONENTS) as settings:
        asyncio.run(run(settings, args.requests, args.warmup, args.unique))


if __name__ == "__main__":
    main()
