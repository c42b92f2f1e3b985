"""What a poison message costs a consumer, in one run on a local stack of its own (Postgres, the
local Kafka-protocol broker, SeaweedFS S3, and the ingest service as `python -m services.ingest`).

Each round publishes a burst of served predictions on `predictions` and times ingest's persistence
consumer until every valid one is stored:

- baseline: the burst holds only valid predictions;
- poisoned: the same size of burst holds one prediction Postgres refuses (a model version that does not
  exist: a foreign-key violation, which no schema can see), so its batch's INSERT fails; the consumer
  halves the batch until the poison stands alone, dead-letters it and stores the rest.

The difference is the time a poison message now costs before the stream moves on (before, the consumer
restarted on the same poll forever). Rounds alternate; the medians are printed.

Usage: .venv/bin/python -m bench.poison [--burst 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from bench.local_stack import detection_deployment, local_stack
from schemas.events import ImageRef, PredictionLogged, PredictionSource, RoleResult
from schemas.predictions import DetectionPrediction, DetectionType
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings

PREDICTION = DetectionPrediction(boxes=[(4.0, 4.0, 30.0, 40.0)], classes=["car"], scores=[0.92])


def served(deployment_id: UUID, model_version_id: UUID | None = None) -> PredictionLogged:
    sha = hashlib.sha256(os.urandom(16)).hexdigest()
    return PredictionLogged(
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
        champion=RoleResult(model_version_id=model_version_id, prediction=PREDICTION, latency_ms=5.0),
        source=PredictionSource.SERVING,
        predicted_at=datetime.now(UTC),
    )


async def stored_in(pool: asyncpg.Pool, ids: list[UUID], started: float) -> float:
    """Seconds from `started` until every prediction of `ids` is stored."""
    query = "SELECT count(*) FROM predicted_assets WHERE prediction_id = ANY($1::uuid[])"
    while True:
        if await pool.fetchval(query, ids) == len(ids):
            return time.perf_counter() - started
        await asyncio.sleep(0.01)


async def burst(
    producer: EventProducer, pool: asyncpg.Pool, deployment_id: UUID, size: int, poison: bool
) -> float:
    events = [served(deployment_id) for _ in range(size)]
    if poison:
        events[size // 2] = served(deployment_id, model_version_id=uuid4())  # no such model version
    valid = [e.prediction_id for i, e in enumerate(events) if not (poison and i == size // 2)]
    started = time.perf_counter()
    await producer.publish_many(Topic.PREDICTIONS, events)
    return await stored_in(pool, valid, started)


async def run(args: argparse.Namespace, settings: Settings) -> None:
    pool = await open_pool(settings.database_url)
    try:
        _, _, deployment_id = await detection_deployment(pool, [Scope.WRITE])
        async with EventProducer.from_settings(settings, max_batch_size=256 * 1024) as producer:
            await burst(producer, pool, deployment_id, args.burst, poison=False)  # warm-up
            clean: list[float] = []
            poisoned: list[float] = []
            for _ in range(args.rounds):
                clean.append(await burst(producer, pool, deployment_id, args.burst, poison=False))
                poisoned.append(await burst(producer, pool, deployment_id, args.burst, poison=True))
    finally:
        await pool.close()
    base, bad = statistics.median(clean), statistics.median(poisoned)
    print(f"bursts of {args.burst} served predictions on `predictions`, {args.rounds} rounds, medians:")
    print(f"{'burst':<52} {'stored in (s)':>13} {'/ baseline':>10}")
    print(f"{'valid only (baseline)':<52} {base:>13.3f} {1.0:>10.3f}")
    print(f"{'one poison (foreign key) among them':<52} {bad:>13.3f} {bad / base:>10.3f}")
    print(
        f"a poison message costs {bad - base:.3f} s before the stream moves on (dead-lettered, rest stored)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with local_stack("poison", ["postgres", "kafka", "s3", "ingest"]) as settings:
        asyncio.run(run(args, settings))


if __name__ == "__main__":
    main()
