"""The scoring stream (faust): `predictions` -> outlier scores and drift reports (to `scores` and
Postgres), `reviews` -> champion and shadow quality; reference jobs are commands the job runner runs
(`reference_job.py`). Batches are taken with `take_events` and scored with one matrix product per
deployment.

State: each deployment's drift window is a faust table (`drift-windows`, changelogged, so a restarted
worker resumes its windows); latency windows live in memory (metrics only); quality is recomputed from
the reviewed predictions in Postgres, where the reviews already are, so it needs no state of its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import defaultdict
from typing import Any
from uuid import UUID

import asyncpg
import faust
import numpy as np

from schemas.events import OutlierScored, PredictionLogged, PredictionReviewed, ShadowReplayed
from schemas.topics import TOPICS, ConsumerGroup, Topic
from services.common.db.repositories.drift_reports import insert_drift_report
from services.common.db.repositories.prediction_scores import recent_reviewed, record_outlier_scores
from services.common.domain.quality import stored_reviewed
from services.common.domain.scoring import Score
from services.common.kafka.deadletter import DeadLetters
from services.common.kafka.failures import MESSAGE_ERRORS
from services.common.kafka.faust_app import registry_topic
from services.common.kafka.faust_service import AgentGuard
from services.common.kafka.producer import EventProducer
from services.common.storage import ObjectStore

from . import metrics
from .drift import DriftWindow, drift_report, slide
from .quality import LatencyWindows, Role, role_quality
from .references import LoadedReference, ReferenceCache
from .settings import ScoringSettings

logger = logging.getLogger(__name__)

APP_ID = ConsumerGroup.SCORING
DRIFT_TABLE = "drift-windows"
SCORE_NAMESPACE = UUID("5e8a1f7c-2d4b-4c69-b0e3-7f6a9d2c1b48")  # score event ids derive from the prediction

Batch = list[tuple[faust.EventT, PredictionLogged]]


def _once_each(batch: Batch) -> Batch:
    """The batch with each prediction once, where it first came. A worker taking partitions over is handed
    their records again after its seek to the committed offsets while the first copies may still wait in
    its batch (issue 16); Postgres keeps one score for both, but both would be marked new, added to the drift
    window twice and their latencies observed twice."""
    first: dict[UUID, tuple[faust.EventT, PredictionLogged]] = {}
    for event, logged in batch:
        first.setdefault(logged.prediction_id, (event, logged))
    return list(first.values())


class ScoringStream:
    def __init__(
        self,
        app: faust.App,
        settings: ScoringSettings,
        pool: asyncpg.Pool,
        store: ObjectStore,
        producer: EventProducer,
        guard: AgentGuard,
    ) -> None:
        self.app = app
        self.settings = settings
        self.pool = pool
        self.store = store
        self.producer = producer
        self.dead_letters = DeadLetters(
            producer, APP_ID, lambda record: metrics.EVENTS.labels(record.topic, "dead_lettered").inc()
        )
        self.guard = guard
        self.references = ReferenceCache(pool, store, settings.scoring_reference_refresh_s)
        self.latencies = LatencyWindows(settings.scoring_latency_window)
        self.windows = app.Table(
            DRIFT_TABLE,
            partitions=TOPICS[Topic.PREDICTIONS].partitions,
            key_type=bytes,  # raw bytes both: the key is the deployment id, as the predictions' key is
            value_type=bytes,
        )
        self._reported: dict[UUID, tuple[int, float]] = {}  # window total and time of the last report
        app.agent(registry_topic(app, Topic.PREDICTIONS), name="score-predictions")(guard(self._predictions))
        app.agent(registry_topic(app, Topic.REVIEWS), name="measure-quality")(guard(self._reviews))
        app.timer(min(1.0, settings.scoring_drift_interval_s))(self._report_overdue_drift)

    # --- predictions -------------------------------------------------------------------------------

    async def _predictions(self, stream: faust.StreamT) -> None:
        async for events in stream.take_events(
            self.settings.scoring_batch_size, within=self.settings.scoring_batch_wait_s
        ):
            await self.guard.until_done("score-predictions", functools.partial(self.score_batch, events))
            self._record_lag(events)

    async def score_batch(self, events: list[faust.EventT]) -> None:
        """Idempotent, so an outage's retry repeats it: a prediction keeps its first score (an unreadable
        event retried with it is dead-lettered again, a duplicate its reader may skip)."""
        by_deployment: dict[UUID, Batch] = defaultdict(list)
        for event in events:
            logged: PredictionLogged | None = await self.dead_letters.decoded(event.message)
            if logged is not None:
                by_deployment[logged.deployment_id].append((event, logged))
        for deployment_id, repeated in by_deployment.items():
            batch = _once_each(repeated)
            self._record_latencies(deployment_id, [logged for _, logged in batch])
            await self.dead_letters.isolating(
                batch,
                lambda item: item[0].message,
                functools.partial(self._score_deployment, deployment_id),
            )

    async def _score_deployment(self, deployment_id: UUID, batch: Batch) -> None:
        loaded = await self.references.get(deployment_id)
        # Not retroactive: a prediction logged before the reference was ready gets no score.
        eligible = [(e, p) for e, p in batch if loaded is not None and p.occurred_at >= loaded.ready_at]
        metrics.EVENTS.labels(Topic.PREDICTIONS.value, "unscored").inc(len(batch) - len(eligible))
        if loaded is None or not eligible:
            return
        features, scored = await self._feature_rows(loaded, eligible)
        if not scored:
            return
        scores = loaded.reference.model.score(features)
        stored = await record_outlier_scores(
            self.pool,
            loaded.project_id,
            deployment_id,
            loaded.id,
            [Score(p.prediction_id, float(s)) for p, s in zip(scored, scores, strict=True)],
        )
        await self.producer.publish_many(
            Topic.SCORES,
            [
                OutlierScored(
                    event_id=uuid.uuid5(SCORE_NAMESPACE, str(p.prediction_id)),
                    deployment_id=deployment_id,
                    prediction_id=p.prediction_id,
                    reference_id=loaded.id,
                    score=stored[p.prediction_id].score,
                )
                for p in scored
            ],
        )
        # A replayed prediction keeps its first score and is not counted again, in metrics or windows.
        new = np.array([stored[p.prediction_id].new for p in scored])
        histogram = metrics.OUTLIER_SCORE.labels(str(deployment_id))
        for score in scores[new]:
            histogram.observe(score)
        metrics.EVENTS.labels(Topic.PREDICTIONS.value, "scored").inc(int(new.sum()))
        metrics.EVENTS.labels(Topic.PREDICTIONS.value, "replayed").inc(int((~new).sum()))
        if new.any():
            predicted_at = np.array([p.predicted_at.timestamp() for p in scored])[new]
            partition = batch[0][0].message.partition
            await self._add_to_window(deployment_id, partition, loaded, features[new], predicted_at)

    async def _feature_rows(
        self, loaded: LoadedReference, eligible: Batch
    ) -> tuple[np.ndarray, list[PredictionLogged]]:
        """The batch's feature matrix and the predictions it holds. One matrix for the whole batch; only
        when an event lacks a feature or holds NaN are the rows built one by one, to dead-letter those."""
        try:
            features = loaded.reference.matrix([logged.features for _, logged in eligible])
            if np.isfinite(features).all():
                return features, [logged for _, logged in eligible]
        except MESSAGE_ERRORS:
            pass
        rows: list[np.ndarray] = []
        scored: list[PredictionLogged] = []
        for event, logged in eligible:
            async with self.dead_letters.guard(event.message):
                row = loaded.reference.matrix([logged.features])[0]
                if not np.isfinite(row).all():
                    raise ValueError("features hold NaN or infinite values")
                rows.append(row)
                scored.append(logged)
        return np.array(rows), scored

    async def _add_to_window(
        self,
        deployment_id: UUID,
        partition: int,
        loaded: LoadedReference,
        features: np.ndarray,
        predicted_at: np.ndarray,
    ) -> None:
        key = str(deployment_id).encode()
        saved = self.windows.get(key)
        window = DriftWindow.from_bytes(saved) if saved else None
        if window is None or window.reference_id != loaded.id:
            window = DriftWindow.empty(loaded.id, features.shape[1])
        window, due = slide(
            window,
            features,
            predicted_at,
            every=self.settings.scoring_drift_every,
            capacity=self.settings.scoring_drift_window,
        )
        for report_window in due:
            await self._report(deployment_id, loaded, report_window)
        # A batch holds several deployments, so the changelog partition is named rather than taken from
        # the stream's current event: the partition of this deployment's predictions, where recovery
        # looks for it.
        value = window.to_bytes()
        self.windows.data[key] = value
        self.windows.send_changelog(partition, key, value)
        self._reported.setdefault(deployment_id, (0, time.monotonic()))

    async def _report_overdue_drift(self) -> None:
        """A failed round (Postgres away) is logged and tried again at the next tick: a timer that raised
        would stop the app."""
        try:
            await self._report_overdue()
        except Exception as exc:
            logger.warning("overdue drift reports failed; trying again", extra={"error": repr(exc)})

    async def _report_overdue(self) -> None:
        now = time.monotonic()
        for deployment_id, (total, at) in list(self._reported.items()):
            if now - at < self.settings.scoring_drift_interval_s:
                continue
            saved = self.windows.get(str(deployment_id).encode())
            if not saved:
                continue
            window = DriftWindow.from_bytes(saved)
            loaded = await self.references.get(deployment_id)
            if window.total != total and loaded is not None and loaded.id == window.reference_id:
                await self._report(deployment_id, loaded, window)

    async def _report(self, deployment_id: UUID, loaded: LoadedReference, window: DriftWindow) -> None:
        if len(window.features) < self.settings.scoring_drift_min_window:
            return
        # In the loop rather than a thread: the agent waits for it either way, and a thread would
        # contend with the loop for the GIL (a report takes milliseconds, see bench/scoring.py).
        report = drift_report(
            window,
            loaded.reference.sample,
            loaded.reference.feature_names,
            deployment_id=deployment_id,
            alpha=self.settings.scoring_drift_alpha,
            correction=self.settings.scoring_drift_correction,
        )
        await insert_drift_report(self.pool, loaded.project_id, report)
        await self.producer.publish(Topic.SCORES, report)
        self._reported[deployment_id] = (window.total, time.monotonic())
        deployment = str(deployment_id)
        for feature in report.features:
            metrics.DRIFT_P_VALUE.labels(deployment, feature.feature).set(feature.p_value)
            metrics.DRIFT_STATISTIC.labels(deployment, feature.feature).set(feature.statistic)
            metrics.DRIFT_DETECTED.labels(deployment, feature.feature).set(float(feature.drifted))
        metrics.DRIFT_DETECTED.labels(deployment, "any").set(float(report.drift_detected))
        metrics.EVENTS.labels(Topic.PREDICTIONS.value, "reported").inc()

    def _record_latencies(self, deployment_id: UUID, logged: list[PredictionLogged]) -> None:
        for prediction in logged:
            self.latencies.add(deployment_id, Role.CHAMPION, prediction.champion.latency_ms)
            if prediction.shadow is not None:
                self.latencies.add(deployment_id, Role.SHADOW, prediction.shadow.latency_ms)
        for role in Role:
            percentiles = self.latencies.percentiles(deployment_id, role)
            if percentiles is not None:
                metrics.LATENCY.labels(str(deployment_id), role.value, "50").set(percentiles[0] / 1000)
                metrics.LATENCY.labels(str(deployment_id), role.value, "95").set(percentiles[1] / 1000)

    # --- reviews -----------------------------------------------------------------------------------

    async def _reviews(self, stream: faust.StreamT) -> None:
        async for events in stream.take_events(100, within=1.0):
            deployments: set[UUID] = set()
            for event in events:
                reviewed: PredictionReviewed | ShadowReplayed | None = await self.dead_letters.decoded(
                    event.message
                )
                if reviewed is not None:
                    deployments.add(reviewed.deployment_id)
            for deployment_id in deployments:
                await self.guard.until_done(
                    "measure-quality", functools.partial(self.measure_quality, deployment_id)
                )
            metrics.EVENTS.labels(Topic.REVIEWS.value, "measured").inc(len(events))
            self._record_lag(events)

    async def measure_quality(self, deployment_id: UUID) -> dict[Role, dict[str, float]]:
        """Champion and shadow metrics over the deployment's latest reviewed predictions, from Postgres
        (the API stores a review before it publishes it), so a replay or a restart needs no state."""
        rows = await recent_reviewed(self.pool, deployment_id, self.settings.scoring_quality_window)
        reviewed = [stored_reviewed(row) for row in rows]
        # Off the event loop: mask AP rasterises every reviewed polygon of the window.
        measured = {role: await asyncio.to_thread(role_quality, reviewed, role) for role in Role}
        for role, values in measured.items():
            for metric, value in values.items():
                metrics.QUALITY.labels(str(deployment_id), role.value, metric).set(value)
        return measured

    # --- shared ------------------------------------------------------------------------------------

    def _record_lag(self, events: list[faust.EventT]) -> None:
        last: dict[Any, int] = {}
        for event in events:
            last[event.message.tp] = event.message.offset
        for tp, offset in last.items():
            highwater = self.app.consumer.highwater(tp)
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(highwater - offset - 1, 0))
