"""The monitoring aggregations on a deployment with a million predictions, in one run on a Postgres of its
own: each query of services/common/db/repositories/monitoring.py (latency percentiles by role and hour,
outlier histogram, outlier rate by hour, reviewed answers and quality per day) over the whole 30 days and
over one day, against a baseline measured in the same run: a plain `count(*)` of the same rows. Also
prints which plan node reads the rows (an index-only scan is what migration 0010's index is for).

    .venv/bin/python -m bench.monitoring [--predictions 1000000] [--others 250000] [--repeats 3]

Figures are milliseconds (median of the repeats) and the ratio to the count. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from bench.local_stack import detection_deployment, local_stack
from schemas.vocabulary import Scope
from services.api.monitoring import quality_buckets
from services.common.db.pool import open_pool
from services.common.db.repositories import monitoring
from services.common.domain.monitoring import TimeRange

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 30
REVIEWED_SHARE = 0.01
BOX = '{"type": "detection", "boxes": [[4, 4, 30, 40]], "classes": ["car"], "scores": [0.9]}'
REVIEW = '{"type": "detection", "boxes": [[5, 4, 30, 41]], "classes": ["car"], "scores": [1.0]}'


async def generate(pool: asyncpg.Pool, project_id: UUID, deployment_id: UUID, count: int) -> None:
    """`count` predictions spread over DAYS, half with a shadow answer, every one scored, 1% reviewed;
    written in SQL (the score-taking trigger off: the scores are in the rows already)."""
    async with pool.acquire() as conn:
        champion = await conn.fetchval(
            "SELECT champion_model_version_id FROM deployments WHERE id = $1", deployment_id
        )
        await conn.execute("ALTER TABLE predicted_assets DISABLE TRIGGER predicted_assets_take_score")
        await conn.execute(
            f"""INSERT INTO predicted_assets (prediction_id, project_id, deployment_id, image_object_key,
                    image_sha256, width, height, source, champion_prediction, champion_latency_ms,
                    champion_model_version_id, shadow_prediction, shadow_latency_ms, outlier_score,
                    predicted_at, status, review, reviewed_at)
                SELECT gen_random_uuid(), $1, $2, 'images/bench/' || i, encode(sha256(int8send(i)), 'hex'),
                       64, 48, 'bench', '{BOX}'::jsonb, 5 + 20 * random(), $3,
                       CASE WHEN i % 2 = 0 THEN '{BOX}'::jsonb END,
                       CASE WHEN i % 2 = 0 THEN 8 + 30 * random() END,
                       power(random(), 4),
                       $4::timestamptz + (i * interval '{DAYS} days') / $5,
                       CASE WHEN reviewed THEN 'REVIEWED' ELSE 'TO_REVIEW' END,
                       CASE WHEN reviewed THEN '{REVIEW}'::jsonb END, CASE WHEN reviewed THEN now() END
                FROM (SELECT i, random() < $6 AS reviewed FROM generate_series(0, $5 - 1) AS i) AS g""",
            project_id,
            deployment_id,
            champion,
            START,
            count,
            REVIEWED_SHARE,
        )
        await conn.execute("ALTER TABLE predicted_assets ENABLE TRIGGER predicted_assets_take_score")
        await conn.execute("VACUUM ANALYZE predicted_assets")


async def timed(call: Callable[[], Awaitable[Any]], repeats: int) -> float:
    """Median milliseconds of `repeats` calls, after one unmeasured call (a warm cache, like a dashboard)."""
    await call()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def scan_node(pool: asyncpg.Pool, project_id: UUID, deployment_id: UUID, span: TimeRange) -> str:
    """The plan node that reads predicted_assets for the latency aggregation."""
    plan = await pool.fetchval(
        """EXPLAIN (FORMAT JSON) SELECT date_bin($5, predicted_at, $3), champion_latency_ms
           FROM predicted_assets WHERE project_id = $1 AND deployment_id = $2
           AND predicted_at >= $3 AND predicted_at < $4""",
        project_id,
        deployment_id,
        span.start,
        span.end,
        span.bucket,
    )
    node = plan if isinstance(plan, list) else json.loads(plan)
    found = node[0]["Plan"]
    while "Plans" in found and found["Node Type"] not in ("Index Only Scan", "Index Scan", "Seq Scan"):
        found = found["Plans"][0]
    return f"{found['Node Type']} on {found.get('Index Name', found.get('Relation Name'))}"


async def measure(count: int, others: int, repeats: int) -> None:
    with local_stack("monitoring", ["postgres"]) as settings:
        pool = await open_pool(settings.database_url, max_size=2)
        try:
            began = time.perf_counter()
            # Another project's deployment shares the table, as in production.
            await generate(pool, *(await detection_deployment(pool, [Scope.READ]))[::2], others)
            project_id, _, deployment_id = await detection_deployment(pool, [Scope.READ])
            await generate(pool, project_id, deployment_id, count)
            print(
                f"generated {count:,} predictions (and {others:,} of another deployment) "
                f"in {time.perf_counter() - began:.0f} s",
                flush=True,
            )
            for label, span in (
                (f"{DAYS} days, hourly", TimeRange(START, START + timedelta(days=DAYS), timedelta(hours=1))),
                (
                    "1 day, hourly",
                    TimeRange(START + timedelta(days=10), START + timedelta(days=11), timedelta(hours=1)),
                ),
            ):
                await report(pool, project_id, deployment_id, span, label, repeats)
        finally:
            await pool.close()


async def report(
    pool: asyncpg.Pool, project_id: UUID, deployment_id: UUID, span: TimeRange, label: str, repeats: int
) -> None:
    rows = await pool.fetchval(
        """SELECT count(*) FROM predicted_assets WHERE project_id = $1 AND deployment_id = $2
           AND predicted_at >= $3 AND predicted_at < $4""",
        project_id,
        deployment_id,
        span.start,
        span.end,
    )

    async def baseline() -> None:
        await pool.fetchval(
            """SELECT count(*) FROM predicted_assets WHERE project_id = $1 AND deployment_id = $2
               AND predicted_at >= $3 AND predicted_at < $4""",
            project_id,
            deployment_id,
            span.start,
            span.end,
        )

    daily = TimeRange(span.start, span.end, timedelta(days=1))

    async def quality() -> None:
        quality_buckets(await monitoring.reviewed_answers(pool, project_id, deployment_id, daily, 20_001))

    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "latency p50/p95/p99 by role": lambda: monitoring.traffic(pool, project_id, deployment_id, span),
        "outlier histogram (20 bins)": lambda: monitoring.outlier_histogram(
            pool, project_id, deployment_id, span, 20
        ),
        "outlier rate above 0.99": lambda: monitoring.outlier_rates(
            pool, project_id, deployment_id, span, 0.99
        ),
        "quality per day (SQL + COCO AP)": quality,
    }
    base_ms = await timed(baseline, repeats)
    node = await scan_node(pool, project_id, deployment_id, span)
    print(f"\n{label}: {rows:,} predictions; rows read by {node}")
    print(f"  {'baseline: count(*) of the same rows':<40} {base_ms:9.1f} ms   1.00x")
    for name, call in calls.items():
        ms = await timed(call, repeats)
        print(f"  {name:<40} {ms:9.1f} ms  {ms / base_ms:5.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=250_000, help="Predictions of another deployment.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(measure(args.predictions, args.others, args.repeats))


if __name__ == "__main__":
    main()
