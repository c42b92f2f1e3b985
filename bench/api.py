"""Control-plane throughput on the review path, in one run on a local stack of its own (Postgres, the
Kafka-protocol mock broker, SeaweedFS S3, and the api as `python -m services.api`):

- baseline: the same work through the repositories directly (`predicted_assets.review` and
  `submit_reviewed` on one pool), with no HTTP, no key check and no events;
- the api: `PUT /v1/predictions/{id}/review` from concurrent clients (each review also writes its
  `reviews` event to the outbox and publishes it), then `POST .../predictions/submit` with 500
  predictions per request (one transaction each, one `feedback` event per asset), and one page of the
  review queue (`GET .../predictions?order=most_outlying`).

Figures are per second and as a ratio to the baseline measured in the same run.

Usage: .venv/bin/python -m bench.api [--predictions 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
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
    return project_id, secret, deployment_id, dataset_version.id, ids


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


async def run(settings: Settings, count: int) -> None:
    pool = await open_pool(settings.database_url, max_size=CONCURRENCY + 2)
    try:
        # Baseline: the repositories alone.
        project_id, _, _, dataset_version_id, ids = await world(pool, count)
        review_s = await timed(
            lambda: concurrently(
                ids, lambda p: predicted_assets.review(pool, project_id, p, REVIEW, reviewed_by="b")
            )
        )
        submit_s = await timed(
            lambda: concurrently(
                ids,
                lambda p: predicted_assets.submit_reviewed(
                    pool, project_id, p, dataset_version_id, submitted_by="b"
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
    finally:
        await pool.close()
    print(f"predictions: {count}, concurrency: {CONCURRENCY}, submit batch: {SUBMIT_BATCH}")
    rows = [
        ("baseline review (repository)", count / review_s, None),
        ("baseline submit (repository)", count / submit_s, None),
        ("api review (HTTP + event)", count / http_review_s, review_s / http_review_s),
        ("api submit (HTTP, batches)", count / http_submit_s, submit_s / http_submit_s),
        ("api review queue page (50 items)", pages / page_s, None),
    ]
    for name, rate, ratio in rows:
        print(f"{name:34} {rate:8.0f} /s" + (f"  ratio {ratio:.2f}" if ratio is not None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=2000)
    args = parser.parse_args()
    with local_stack("api", ["postgres", "kafka", "s3", "api"]) as settings:
        asyncio.run(run(settings, args.predictions))


if __name__ == "__main__":
    main()
