"""The scoring stream's throughput and its drift report's latency, each as a ratio against a baseline
measured in the same run:

1. scored predictions/s through the stream (faust on the local broker, scores to Postgres and `scores`,
   drift windows and reports) against the same computation in plain numpy without Kafka or Postgres
   (decode, feature matrix, outlier scores, drift window and its reports): the ceiling;
2. one drift report, 1,000 predictions against a 10,000-image reference, every feature, against a loop of
   `scipy.stats.ks_2samp` over the features.

    .venv/bin/python -m bench.scoring [--predictions 20000]

It starts its own Postgres, broker and S3 in a temporary state folder. Targets: >= 5,000 scored/s per
worker, within 3x of the ceiling; a drift report in <= 50 ms. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from scipy.stats import ks_2samp

from cvloop.demo.digits import darkened, digit_images, feature_matrix
from cvloop.demo.scoring import classification_deployment, prediction_of, ready_reference, reference_features
from cvloop.stack import stack
from cvloop.stack.process import StackError
from cvloop.stack.scratch import free_port_base
from cvloop.stack.settings import StackSettings
from schemas.codec import decode
from schemas.events import MultipleTestingCorrection, PredictionLogged
from schemas.topics import Topic
from services.common.db.pool import open_pool
from services.common.db.repositories import prediction_scores
from services.common.kafka.faust_app import create_app, registry_topic
from services.common.kafka.producer import EventProducer
from services.common.storage import ObjectStore
from services.scoring import ks
from services.scoring.drift import DriftWindow, drift_report, slide
from services.scoring.reference import Reference, build_reference
from services.scoring.service import ScoringService

COMPONENTS = ["postgres", "kafka", "s3"]
WINDOW = 1000
EVERY = 1000


def ceiling(payloads: list[bytes], reference: Reference, reference_id: UUID, deployment_id: UUID) -> float:
    """Predictions/s of the stream's computation in one process, no Kafka, no Postgres."""
    start = time.perf_counter()
    window = DriftWindow.empty(reference_id, len(reference.feature_names))
    for begin in range(0, len(payloads), 1000):
        events: list[PredictionLogged] = [
            decode(Topic.PREDICTIONS, p) for p in payloads[begin : begin + 1000]
        ]
        features = reference.matrix([e.features for e in events])
        reference.model.score(features)
        times = np.array([e.predicted_at.timestamp() for e in events])
        window, due = slide(window, features, times, every=EVERY, capacity=WINDOW)
        for report_window in due:
            drift_report(
                report_window,
                reference.sample,
                reference.feature_names,
                deployment_id=deployment_id,
                alpha=0.05,
                correction=MultipleTestingCorrection.BENJAMINI_HOCHBERG,
            )
    return len(payloads) / (time.perf_counter() - start)


async def through_the_stream(settings: StackSettings, count: int) -> tuple[float, float, float]:
    """(stream, bare faust, plain numpy) predictions/s on the same events."""
    pool = await open_pool(settings.database_url)
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket()
    rng = np.random.default_rng(0)
    d = await classification_deployment(pool)
    reference_id, reference = await ready_reference(pool, store, d, 10_000, rng)
    images = digit_images()
    events = [prediction_of(d.deployment_id, images[i % len(images)], i % 10) for i in range(count)]
    payloads = [e.to_bytes() for e in events]
    async with EventProducer.from_settings(settings) as producer:
        for begin in range(0, count, 2000):
            await asyncio.gather(
                *(
                    producer.publish_bytes(Topic.PREDICTIONS, p, key=e.key)
                    for p, e in zip(payloads[begin : begin + 2000], events[begin : begin + 2000], strict=True)
                )
            )

    service = ScoringService(settings)
    await service.start()
    try:
        first = last = None
        while True:
            scored = await prediction_scores.count_scores(pool, d.deployment_id)
            now = time.perf_counter()
            if scored and first is None:
                first, first_count = now, scored
            if scored >= count:
                last = now
                break
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
        await pool.close()
    assert first is not None and last is not None
    stream_rate = (count - first_count) / (last - first) if last > first else float("nan")
    return (
        stream_rate,
        await bare_faust(settings, count),
        ceiling(payloads, reference, reference_id, d.deployment_id),
    )


async def bare_faust(settings: StackSettings, count: int) -> float:
    """Events/s faust delivers to a `take_events` agent that does nothing, on the same topic."""
    app = create_app(f"bench-bare-{uuid.uuid4()}", settings, datadir=str(settings.state_path / "bare"))
    seen, first, done = 0, 0.0, asyncio.Event()

    async def agent(stream: Any) -> None:
        nonlocal seen, first
        async for events in stream.take_events(1000, within=0.2):
            first = first or time.perf_counter()
            seen += len(events)
            if seen >= count:
                done.set()

    app.agent(registry_topic(app, Topic.PREDICTIONS), name="bare")(agent)
    await app.start()
    try:
        await asyncio.wait_for(done.wait(), 600)
    finally:
        await app.stop()
    return count / (time.perf_counter() - first)


def drift_report_latency() -> None:
    rng = np.random.default_rng(1)
    reference = build_reference(reference_features(10_000, rng), sample_size=10_000)
    images = digit_images()
    clean = feature_matrix([images[i] for i in rng.integers(0, len(images), WINDOW)])
    shifted = feature_matrix([darkened(images[i], rng) for i in rng.integers(0, len(images), WINDOW)])
    for name, rows in (("training-like window", clean), ("darkened window", shifted)):
        window = DriftWindow.empty(uuid.uuid4(), rows.shape[1]).add(rows, np.arange(float(WINDOW)), WINDOW)
        ours, theirs = [], []
        for _ in range(7):
            ks._exact_p_value.cache_clear()  # cold: no lattice count of an earlier report reused
            start = time.perf_counter()
            report = drift_report(
                window,
                reference.sample,
                reference.feature_names,
                deployment_id=uuid.uuid4(),
                alpha=0.05,
                correction=MultipleTestingCorrection.BENJAMINI_HOCHBERG,
            )
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            for j in range(rows.shape[1]):
                ks_2samp(rows[:, j], reference.sample[:, j])
            theirs.append(time.perf_counter() - start)
        a, b = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
        print(
            f"drift report, {name} ({WINDOW} vs {len(reference.sample)}, {rows.shape[1]} features, "
            f"drift={report.drift_detected}): {a:.1f} ms median of 7, cold cache (target <= 50 ms); "
            f"scipy ks_2samp loop {b:.1f} ms; ratio {b / a:.2f}x"
        )


def start_stack(state: Path, attempts: int = 3) -> StackSettings:
    """Postgres, broker and S3 on free ports; another block of ports when one was taken meanwhile (the
    machine is shared)."""
    for attempt in range(attempts):
        settings = StackSettings(
            state_dir=state,
            port_base=free_port_base(),
            scoring_drift_window=WINDOW,
            scoring_drift_every=EVERY,
            scoring_drift_interval_s=3600.0,
        )
        try:
            for health in stack.up(settings, COMPONENTS):
                assert health.ok, health
            return settings
        except StackError:
            for _ in stack.down(settings, COMPONENTS):
                pass
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=20_000)
    args = parser.parse_args()

    drift_report_latency()
    state = Path(tempfile.mkdtemp(prefix="cvloop-bench-scoring-"))
    try:
        settings = start_stack(state)
        try:
            stream_rate, faust_rate, ceiling_rate = asyncio.run(
                through_the_stream(settings, args.predictions)
            )
        finally:
            for _ in stack.down(settings, COMPONENTS):
                pass
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(
        f"scored predictions/s through the stream (1 worker, local broker, Postgres): {stream_rate:,.0f} "
        f"(target >= 5,000)"
    )
    print(f"faust alone, a take_events agent doing nothing on the same events: {faust_rate:,.0f}")
    print(f"same computation in plain numpy, no Kafka/Postgres (ceiling): {ceiling_rate:,.0f}")
    print(f"ceiling / stream: {ceiling_rate / stream_rate:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
