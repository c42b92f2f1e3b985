"""Control-plane throughput on the review path, in one run on a local stack of its own (Postgres, the
local Kafka-protocol broker, SeaweedFS S3, and the api as `python -m services.api`):

- baseline: the same work through the repositories directly (`predicted_assets.review` and
  `submit_reviewed` on one pool), with no HTTP, no key check and no events;
- the api: `PUT /v1/predictions/{id}/review` from concurrent clients (each review also writes its
  `reviews` event to the outbox and publishes it), then `POST .../predictions/submit` with 500
  predictions per request (one transaction each, one `feedback` event per asset), and one page of the
  review queue (`GET .../predictions?order=most_outlying`);
- under load: 50 clients listing the review queue and reviewing, alone (the baseline) and while one
  request submits `--submission` (10,000) reviewed predictions at once: whether one bulk request holds
  the event loop (or the pool) for everyone else.

Figures are per second and as a ratio to the baseline measured in the same run.

Usage: .venv/bin/python -m bench.api [--predictions 2000] [--submission 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from bench.local_stack import detection_deployment, local_stack
from schemas.events import ImageRef, PredictionLogged, PredictionSource, RoleResult
from schemas.local_stack import LOCAL_HOST
from schemas.predictions import DetectionPrediction, DetectionType
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments, predicted_assets, registry
from services.common.settings import Settings

CONCURRENCY = 16
LOAD_CLIENTS = 50
ALONE_S = 10.0  # how long the clients run alone, the baseline
SUBMIT_BATCH = 500
PREDICTION = DetectionPrediction(boxes=[(4.0, 4.0, 30.0, 40.0)], classes=["car"], scores=[0.9])
REVIEW = DetectionPrediction(boxes=[(5.0, 4.0, 30.0, 41.0)], classes=["car"], scores=[1.0])


async def world(pool: asyncpg.Pool, predictions: int) -> tuple[UUID, str, UUID, UUID, list[UUID]]:
    """A project and its key, a deployment with a feedback-loop dataset version, and logged predictions."""
    project_id, secret, deployment_id = await detection_deployment(pool, list(Scope))
    dataset = await registry.create_dataset(pool, project_id, f"ds-{uuid4().hex[:6]}")
    dataset_version = await registry.create_dataset_version(
        pool, project_id, dataset.id, "v1", DetectionType.DETECTION
    )
    await deployments.set_feedback_loop(pool, project_id, deployment_id, [dataset_version.id])
    ids = await logged(pool, project_id, deployment_id, predictions)
    return project_id, secret, deployment_id, dataset_version.id, ids


async def logged(pool: asyncpg.Pool, project_id: UUID, deployment_id: UUID, predictions: int) -> list[UUID]:
    """New predictions of the deployment, TO_REVIEW."""
    ids = []
    for _ in range(predictions):
        sha = hashlib.sha256(uuid4().bytes).hexdigest()
        event = PredictionLogged(
            deployment_id=deployment_id,
            prediction_id=uuid4(),
            detection_type=DetectionType.DETECTION,
            image=ImageRef(
                object_key=f"images/{sha[:2]}/{sha}.png",
                sha256=sha,
                width=64,
                height=48,
                content_type="image/png",
            ),
            champion=RoleResult(prediction=PREDICTION, latency_ms=2.0),
            source=PredictionSource.MONITOR_API,
            predicted_at=datetime.now(UTC),
        )
        await predicted_assets.insert_prediction(pool, project_id, event)
        ids.append(event.prediction_id)
    return ids


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def concurrently(items: Sequence[Any], one: Callable[[Any], Awaitable[Any]]) -> None:
    queue = list(items)

    async def worker() -> None:
        while queue:
            await one(queue.pop())

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def run(settings: Settings, count: int, submission: int) -> None:
    pool = await open_pool(settings.database_url, max_size=CONCURRENCY + 2)
    try:
        # Baseline: the repositories alone.
        project_id, _, deployment_id, dataset_version_id, ids = await world(pool, count)
        review_s = await timed(
            lambda: concurrently(
                ids, lambda p: predicted_assets.review(pool, project_id, p, REVIEW, reviewed_by="b")
            )
        )
        submit_s = await timed(
            lambda: concurrently(
                ids,
                lambda p: predicted_assets.submit_reviewed(
                    pool, project_id, deployment_id, [p], dataset_version_id, submitted_by="b"
                ),
            )
        )
        # The api, over HTTP.
        _, secret, deployment_id, dataset_version_id, ids = await world(pool, count)
        headers = {"Authorization": f"Bearer {secret}"}
        limits = httpx.Limits(max_connections=CONCURRENCY)
        url = f"http://{LOCAL_HOST}:{settings.api_port}"
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
            review_body = {"review": REVIEW.model_dump(mode="json")}

            async def review(prediction_id: UUID) -> None:
                answer = await client.put(f"/v1/predictions/{prediction_id}/review", json=review_body)
                answer.raise_for_status()

            http_review_s = await timed(lambda: concurrently(ids, review))
            batches = [ids[i : i + SUBMIT_BATCH] for i in range(0, len(ids), SUBMIT_BATCH)]

            async def submit(batch: list[UUID]) -> None:
                body = {
                    "dataset_version_id": str(dataset_version_id),
                    "prediction_ids": [str(p) for p in batch],
                }
                answer = await client.post(f"/v1/deployments/{deployment_id}/predictions/submit", json=body)
                answer.raise_for_status()

            http_submit_s = await timed(lambda: concurrently(batches, submit))
            pages = 50
            page_s = await timed(
                lambda: concurrently(
                    range(pages),
                    lambda _: client.get(
                        f"/v1/deployments/{deployment_id}/predictions", params={"order": "most_outlying"}
                    ),
                )
            )
        report = _report(count, review_s, submit_s, http_review_s, http_submit_s, pages, page_s)
        await under_load(settings, pool, submission)
    finally:
        await pool.close()
    print(report)


def _report(
    count: int,
    review_s: float,
    submit_s: float,
    http_review_s: float,
    http_submit_s: float,
    pages: int,
    page_s: float,
) -> str:
    lines = [f"predictions: {count}, concurrency: {CONCURRENCY}, submit batch: {SUBMIT_BATCH}"]
    rows = [
        ("baseline review (repository)", count / review_s, None),
        ("baseline submit (repository)", count / submit_s, None),
        ("api review (HTTP + event)", count / http_review_s, review_s / http_review_s),
        ("api submit (HTTP, batches)", count / http_submit_s, submit_s / http_submit_s),
        ("api review queue page (50 items)", pages / page_s, None),
    ]
    for name, rate, ratio in rows:
        lines.append(f"{name:34} {rate:8.0f} /s" + (f"  ratio {ratio:.2f}" if ratio is not None else ""))
    return "\n".join(lines)


@dataclass
class Load:
    """What the load clients saw: the seconds each request took, by kind."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: {"list": [], "review": []})

    def line(self, kind: str, elapsed_s: float, baseline: Load | None, baseline_s: float) -> str:
        times = sorted(self.seconds[kind])
        rate = len(times) / elapsed_s
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        ratio = ""
        if baseline is not None:
            ratio = f"  ratio {rate / (len(baseline.seconds[kind]) / baseline_s):.2f}"
        return f"{kind:7} {rate:8.0f} /s  p99 {p99:7.0f} ms{ratio}"


async def under_load(settings: Settings, pool: asyncpg.Pool, submission: int) -> None:
    """50 clients listing and reviewing, alone and then beside one submission of `submission` ids."""
    project_id, secret, deployment_id, dataset_version_id, to_submit = await world(pool, submission)
    for prediction_id in to_submit:  # reviewed through the repository: the request only submits
        await predicted_assets.review(pool, project_id, prediction_id, REVIEW, reviewed_by="b")
    # What the clients review (a REVIEWED one may be reviewed again, so they go round).
    to_review = await logged(pool, project_id, deployment_id, 20 * LOAD_CLIENTS)
    headers = {"Authorization": f"Bearer {secret}"}
    url = f"http://{LOCAL_HOST}:{settings.api_port}"
    review_body = {"review": REVIEW.model_dump(mode="json")}
    reviewed = itertools.cycle(to_review)

    async def clients(load: Load, until: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=LOAD_CLIENTS + 1)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as client:

            async def one(index: int) -> None:
                while not until.is_set():
                    kind = "list" if index % 2 else "review"
                    started = time.perf_counter()
                    if kind == "list":
                        answer = await client.get(
                            f"/v1/deployments/{deployment_id}/predictions", params={"status": "TO_REVIEW"}
                        )
                    else:
                        answer = await client.put(
                            f"/v1/predictions/{next(reviewed)}/review", json=review_body
                        )
                    answer.raise_for_status()
                    load.seconds[kind].append(time.perf_counter() - started)

            await asyncio.gather(*(one(i) for i in range(LOAD_CLIENTS)))

    alone, stop = Load(), asyncio.Event()
    asyncio.get_running_loop().call_later(ALONE_S, stop.set)
    alone_s = await timed(lambda: clients(alone, stop))

    beside, done = Load(), asyncio.Event()

    async def submit() -> float:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
            started = time.perf_counter()
            body = {
                "dataset_version_id": str(dataset_version_id),
                "prediction_ids": [str(p) for p in to_submit],
            }
            answer = await client.post(f"/v1/deployments/{deployment_id}/predictions/submit", json=body)
            answer.raise_for_status()
            submitted_s = time.perf_counter() - started
        await asyncio.sleep(max(0.0, ALONE_S - submitted_s))  # the clients run at least as long as alone
        done.set()
        return submitted_s

    started = time.perf_counter()
    submitted_s, _ = await asyncio.gather(submit(), clients(beside, done))
    beside_s = time.perf_counter() - started
    print(f"under load: {LOAD_CLIENTS} clients listing (50 items) and reviewing, {ALONE_S:.0f} s alone")
    for kind in ("list", "review"):
        print(f"  alone         {alone.line(kind, alone_s, None, alone_s)}")
        print(f"  beside submit {beside.line(kind, beside_s, alone, alone_s)}")
    print(f"  one submission of {submission} predictions: {submitted_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=2000)
    parser.add_argument("--submission", type=int, default=10_000, help="ids in the one bulk submission")
    args = parser.parse_args()
    with local_stack("api", ["postgres", "kafka", "s3", "api"]) as settings:
        asyncio.run(run(settings, args.predictions, args.submission))


if __name__ == "__main__":
    main()
