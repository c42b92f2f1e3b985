"""The pipeline stream (faust): `feedback` and `scores` -> submissions, drift reports and outlier scores
counted per deployment -> a trigger rule holds -> TrainingRequested on `training`; `training` -> a
request's experiment and job (JobRequested through the outbox), a finished training's export and
deployment (DeploymentUpdated through the outbox); `reviews` -> the promotion gate of
`shadow_then_promote` deployments (gate.py; its state is in Postgres, where the reviews are).

State: one changelogged table, `submitted-counts`, keyed by the feedback topic's partitioning (`scores`
has the same), holds three kinds of entries: `deployment:<id>` -> the deployment's CycleCount,
`prediction:<id>` -> the deployment it was counted for, and `outliers:<id>` -> the deployment's
OutlierWindow (while its policy has the outlier-rate rule). Both entries of one submission are set in the
same step, so they go out in one changelog batch of the same partition; a restarted worker recovers both,
and a replayed submission finds its prediction and is not counted again. Every prediction ever counted
stays a key (a UUID and a deployment id each). A replayed drift report or score is recognised by the
deployment's entries themselves (counting.observe_drift, counting.observe_outlier).

The table is a cache of what Postgres implies: when it has no entry for a deployment, or one behind the
deployment's experiments (a broker that forgot, a lost changelog), the count is rebuilt from Postgres
(counting.reconciled) before the event is counted, and every prediction it counted becomes a key.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import defaultdict
from uuid import UUID

import asyncpg
import faust

from schemas.events import (
    AssetSubmitted,
    DriftReported,
    OutlierScored,
    PredictionReviewed,
    ShadowReplayed,
    TrainingFinished,
    TrainingRequested,
    training_request_id,
)
from schemas.topics import TOPICS, ConsumerGroup, Topic
from services.common.db.repositories import deployment_figures, deployments
from services.common.domain.quality import stored_reviewed
from services.common.domain.triggers import QualityFigures
from services.common.kafka.deadletter import DeadLetters, SourceRecord
from services.common.kafka.faust_app import registry_topic
from services.common.kafka.faust_service import AgentGuard
from services.common.kafka.producer import EventProducer
from services.common.storage import ObjectStore

from . import metrics
from .counting import (
    CycleCount,
    OutlierWindow,
    TrainingSettings,
    Trigger,
    champion_quality,
    count_submission,
    decide,
    needs_reconciling,
    observe_drift,
    observe_outlier,
    reconciled,
    request_event_id,
)
from .export import finish_training
from .gate import evaluate
from .rollout import Outcome
from .settings import PipelineSettings
from .training import create_training

logger = logging.getLogger(__name__)

APP_ID = ConsumerGroup.PIPELINE
COUNTS_TABLE = "submitted-counts"
GAUGE_REFRESH_S = 10.0
GATE_BATCH, GATE_BATCH_WAIT_S = 100, 0.5  # reviews the promotion gate takes at once, and waits for
DEPLOYMENT_PREFIX = b"deployment:"
PREDICTION_PREFIX = b"prediction:"
OUTLIERS_PREFIX = b"outliers:"


def deployment_key(deployment_id: UUID) -> bytes:
    return DEPLOYMENT_PREFIX + str(deployment_id).encode()


def prediction_key(prediction_id: UUID) -> bytes:
    return PREDICTION_PREFIX + str(prediction_id).encode()


def outliers_key(deployment_id: UUID) -> bytes:
    return OUTLIERS_PREFIX + str(deployment_id).encode()


class PipelineStream:
    def __init__(
        self,
        app: faust.App,
        pool: asyncpg.Pool,
        store: ObjectStore,
        producer: EventProducer,
        outbox_wake: asyncio.Event,
        guard: AgentGuard,
        settings: PipelineSettings,
    ) -> None:
        self.app = app
        self.settings = settings
        self.pool = pool
        self.store = store
        self.producer = producer
        self.dead_letters = DeadLetters(producer, APP_ID)
        self.guard = guard
        self.outbox_wake = outbox_wake
        # The feedback and scores agents both move a deployment's entry, awaiting Postgres in between: one
        # at a time per deployment, so neither writes over what the other counted.
        self.deciding: defaultdict[UUID, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.settings_read: dict[UUID, tuple[float, TrainingSettings]] = {}  # when read, what
        self.counts = app.Table(
            COUNTS_TABLE,
            partitions=TOPICS[Topic.FEEDBACK].partitions,
            key_type=bytes,
            value_type=bytes,
        )
        app.agent(registry_topic(app, Topic.FEEDBACK), name="count-submissions")(guard(self._feedback))
        app.agent(registry_topic(app, Topic.TRAINING), name="train-and-export")(guard(self._training))
        app.agent(registry_topic(app, Topic.REVIEWS), name="promotion-gate")(guard(self._reviews))
        app.agent(registry_topic(app, Topic.SCORES), name="observe-scores")(guard(self._scores))
        app.timer(GAUGE_REFRESH_S)(self._refresh_gauges)

    # --- feedback ----------------------------------------------------------------------------------

    async def _feedback(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            await self.guard.until_done(
                "count-submissions", functools.partial(self._count_one, event.message)
            )

    async def _count_one(self, record: SourceRecord) -> None:
        """Retried in place on an outage, decoding included (a dead letter's publish may be what failed)."""
        submitted: AssetSubmitted | None = await self.dead_letters.decoded(record)
        if submitted is not None:
            async with self.dead_letters.guard(record), self.deciding[submitted.deployment_id]:
                await self.count(submitted)

    async def count(self, submitted: AssetSubmitted) -> None:
        """Count a submission once per prediction, and decide with the deployment's continuous-training
        settings as Postgres holds them now."""
        deployment = str(submitted.deployment_id)
        state, reconciling = await self._state(submitted.deployment_id)
        settings = await self._training_settings(submitted.deployment_id)
        quality = await self._quality(submitted.deployment_id, settings)
        outliers = self._outliers(submitted.deployment_id, settings)
        at = submitted.occurred_at
        seen = prediction_key(submitted.prediction_id) in self.counts
        if not seen and state.last_counted != submitted.prediction_id:
            counted, trigger = count_submission(state, settings, at, quality, outliers)
        elif reconciling:  # counted by the reconciliation, whose count may have reached the threshold
            counted, trigger = decide(state, settings, at, quality, outliers)
        else:
            metrics.DUPLICATE_SUBMISSIONS.labels(deployment).inc()
            return
        if trigger is not None:
            await self._request(submitted.deployment_id, trigger)
        # Set together, no await in between, the count first (see CycleCount.last_counted).
        counted = counted.model_copy(update={"last_counted": submitted.prediction_id})
        self.counts[deployment_key(submitted.deployment_id)] = counted.model_dump_json().encode()
        self.counts[prediction_key(submitted.prediction_id)] = deployment.encode()
        metrics.SUBMISSIONS.labels(deployment).inc()
        metrics.SUBMITTED_SINCE_TRIGGER.labels(deployment).set(counted.submitted)
        metrics.TRIGGER_THRESHOLD.labels(deployment).set(settings.threshold or 0)

    async def observe(self, scored: OutlierScored | DriftReported) -> None:
        """Count a drift report or an outlier score toward the deployment's cycle once, and decide; only
        while continuous training is on and its policy has the rule that reads it (settings read at most
        `pipeline_settings_cache_s` ago: a read per scored prediction would load Postgres with each one)."""
        settings = await self._training_settings(
            scored.deployment_id, max_age_s=self.settings.pipeline_settings_cache_s
        )
        drift = isinstance(scored, DriftReported)
        if not settings.active or (settings.policy.drift if drift else settings.policy.outlier_rate) is None:
            return  # counted only while a rule reads it
        state, _ = await self._state(scored.deployment_id, check=False)
        outliers = self._outliers(scored.deployment_id, settings)
        key = deployment_key(scored.deployment_id)
        # The quality rule is read at submissions only: a review comes before its asset's submission, and
        # two queries per scored prediction would cost more than the reports and scores themselves.
        if isinstance(scored, DriftReported):
            counted = observe_drift(state, scored)
            if counted is None:
                self._replayed(scored)
                return
            following, trigger = decide(counted, settings, scored.occurred_at, outliers=outliers)
            if trigger is not None:
                await self._request(scored.deployment_id, trigger)
            self.counts[key] = following.model_dump_json().encode()
            return
        assert outliers is not None  # the policy has the outlier-rate rule
        window = observe_outlier(outliers, state.cycle, scored)
        if window is None:
            self._replayed(scored)
            return
        following, trigger = decide(state, settings, scored.occurred_at, outliers=window)
        if trigger is not None:
            await self._request(scored.deployment_id, trigger)
        # Set together, no await in between; the deployment's count only when the score moved it on.
        self.counts[outliers_key(scored.deployment_id)] = window.model_dump_json().encode()
        if trigger is not None:
            self.counts[key] = following.model_dump_json().encode()

    def _replayed(self, scored: OutlierScored | DriftReported) -> None:
        metrics.DUPLICATE_SCORES.labels(str(scored.deployment_id), scored.type).inc()

    def _outliers(self, deployment_id: UUID, settings: TrainingSettings) -> OutlierWindow | None:
        """The deployment's kept outlier scores when its policy has the outlier-rate rule."""
        if settings.policy.outlier_rate is None:
            return None
        saved = self.counts.get(outliers_key(deployment_id))
        return OutlierWindow.model_validate_json(saved) if saved else OutlierWindow()

    async def _state(self, deployment_id: UUID, *, check: bool = True) -> tuple[CycleCount, bool]:
        """The deployment's count, rebuilt from Postgres when the table is behind it (and whether it was).
        Without `check`, an entry the table has is taken as it is: a scored prediction costs no query, and
        a table behind its experiments at worst requests a cycle again whose experiment exists (a no-op)
        until the next submission checks."""
        saved = self.counts.get(deployment_key(deployment_id))
        state = CycleCount.model_validate_json(saved) if saved else None
        if state is not None and not check:
            return state, False
        latest_cycle = await deployment_figures.latest_training_cycle(self.pool, deployment_id)
        if needs_reconciling(state, latest_cycle):
            return await self._reconcile(deployment_id, state), True
        assert state is not None  # read
        return state, False

    async def _request(self, deployment_id: UUID, trigger: Trigger) -> None:
        """Published before the count moves on: a crash in between replays the same request id, whose
        experiment is created once."""
        request = training_request_id(deployment_id, trigger.cycle)
        await self.producer.publish(
            Topic.TRAINING,
            TrainingRequested(
                event_id=request_event_id(request),
                deployment_id=deployment_id,
                request_id=request,
                cycle=trigger.cycle,
                submitted_count=trigger.submitted,
                trigger=trigger.fired,
            ),
        )
        metrics.TRAINING_REQUESTS.labels(str(deployment_id)).inc()
        metrics.TRIGGERS.labels(str(deployment_id), trigger.fired.rule.value).inc()
        logger.info(
            "training requested",
            extra={
                "deployment_id": str(deployment_id),
                "request_id": request,
                "rule": trigger.fired.rule.value,
                "figures": trigger.fired.figures,
            },
        )

    # --- scores ------------------------------------------------------------------------------------

    async def _scores(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            await self.guard.until_done("observe-scores", functools.partial(self._observe_one, event.message))

    async def _observe_one(self, record: SourceRecord) -> None:
        scored: OutlierScored | DriftReported | None = await self.dead_letters.decoded(record)
        if scored is not None:
            async with self.dead_letters.guard(record), self.deciding[scored.deployment_id]:
                await self.observe(scored)

    async def _reconcile(self, deployment_id: UUID, stale: CycleCount | None) -> CycleCount:
        """The deployment's count rebuilt from Postgres; every prediction submitted becomes a key, as if the
        table had counted each (set with no await in between, like a count): a replayed submission of an
        earlier cycle (a worker taking a partition over reads it again from its start) is not counted in
        this one."""
        progress = await deployment_figures.training_progress(self.pool, deployment_id)
        state = reconciled(
            progress.latest_cycle, progress.latest_at, len(progress.submitted_since), progress.submitted_total
        )
        for prediction_id in progress.submitted_since + progress.submitted_before:
            self.counts[prediction_key(prediction_id)] = str(deployment_id).encode()
        self.counts[deployment_key(deployment_id)] = state.model_dump_json().encode()
        metrics.RECONCILIATIONS.labels(str(deployment_id)).inc()
        # Quiet at a deployment's first submission; loud when the table had forgotten something.
        logger.log(
            logging.WARNING if stale is not None or state.total > 1 else logging.INFO,
            "submission count reconciled from Postgres",
            extra={
                "deployment_id": str(deployment_id),
                "table": stale.model_dump() if stale else None,
                "reconciled": state.model_dump(),
            },
        )
        return state

    async def _training_settings(self, deployment_id: UUID, max_age_s: float = 0.0) -> TrainingSettings:
        """The deployment's settings as Postgres holds them, or as read less than `max_age_s` ago."""
        now = time.monotonic()
        read = self.settings_read.get(deployment_id)
        if read is not None and now - read[0] < max_age_s:
            return read[1]
        deployment = await deployments.find_deployment(self.pool, deployment_id)
        if deployment is None:  # deleted since: its events count toward nothing
            settings = TrainingSettings(active=False, threshold=None)
        else:
            ct = deployment.continuous_training
            settings = TrainingSettings(
                active=ct.active,
                threshold=ct.trigger_threshold,
                policy=ct.trigger_policy,
                champion_id=deployment.champion_model_version_id,
            )
        self.settings_read[deployment_id] = (now, settings)
        return settings

    async def _quality(self, deployment_id: UUID, settings: TrainingSettings) -> QualityFigures | None:
        """The champion's reviewed quality when the policy has a quality rule, from Postgres (the api
        stores a review before it publishes it)."""
        rule = settings.policy.quality
        if not settings.active or rule is None or settings.champion_id is None:
            return None
        latest = await deployment_figures.champion_reviews(
            self.pool, deployment_id, settings.champion_id, rule.reviews, first=False
        )
        first = await deployment_figures.champion_reviews(
            self.pool, deployment_id, settings.champion_id, rule.reviews, first=True
        )
        return champion_quality(
            [stored_reviewed(row) for row in latest], [stored_reviewed(row) for row in first]
        )

    def cycle_count(self, deployment_id: UUID) -> CycleCount:
        saved = self.counts.get(deployment_key(deployment_id))
        return CycleCount.model_validate_json(saved) if saved else CycleCount()

    async def _refresh_gauges(self) -> None:
        """The gauges of deployments this worker recovered but has not counted for since it started."""
        for key, value in list(self.counts.items()):
            if key.startswith(DEPLOYMENT_PREFIX):
                deployment = key.removeprefix(DEPLOYMENT_PREFIX).decode()
                metrics.SUBMITTED_SINCE_TRIGGER.labels(deployment).set(
                    CycleCount.model_validate_json(value).submitted
                )

    # --- training ----------------------------------------------------------------------------------

    async def _training(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            await self.guard.until_done("train-and-export", functools.partial(self._train_one, event.message))

    async def _train_one(self, record: SourceRecord) -> None:
        message: TrainingRequested | TrainingFinished | None = await self.dead_letters.decoded(record)
        if message is None:
            return
        async with self.dead_letters.guard(record):
            if isinstance(message, TrainingRequested):
                await self.request_training(message)
            else:
                await self.export(message)  # a TrainingFinished

    async def request_training(self, request: TrainingRequested) -> None:
        created = await create_training(self.pool, request)
        if created is None:
            logger.info("training request seen before", extra={"request_id": request.request_id})
            return
        self.outbox_wake.set()
        logger.info(
            "experiment created",
            extra={
                "request_id": request.request_id,
                "experiment_id": str(created.experiment.id),
                "job_id": str(created.job.id),
            },
        )

    async def export(self, finished: TrainingFinished) -> None:
        exported = await finish_training(self.pool, self.store, finished)
        if exported is None:
            logger.info(
                "nothing to export: exported before, or not a pipeline training",
                extra={"request_id": finished.request_id, "experiment_id": str(finished.experiment_id)},
            )
            return
        metrics.EXPORTS.labels(str(finished.deployment_id), exported.outcome.value).inc()
        context = {"request_id": finished.request_id, "experiment_id": str(finished.experiment_id)}
        if exported.outcome is Outcome.FAILED:
            logger.warning("nothing deployed", extra=context | {"reason": exported.reason})
            return
        assert exported.model_version is not None  # exported unless failed
        if exported.outcome is Outcome.UNSERVABLE:
            logger.warning(
                "exported, not deployed",
                extra=context
                | {"model_version_id": str(exported.model_version.id), "reason": exported.reason},
            )
            return
        self.outbox_wake.set()
        logger.info(
            "training exported",
            extra=context
            | {"model_version_id": str(exported.model_version.id), "outcome": exported.outcome.value},
        )

    # --- reviews: the promotion gate ----------------------------------------------------------------

    async def _reviews(self, stream: faust.StreamT) -> None:
        # A batch decides once per deployment: a burst of reviews costs one test, not one each.
        async for events in stream.take_events(GATE_BATCH, within=GATE_BATCH_WAIT_S):
            records = [event.message for event in events]
            await self.guard.until_done("promotion-gate", functools.partial(self._gate_batch, records))

    async def _gate_batch(self, records: list[SourceRecord]) -> None:
        """Retried in place on an outage, decoding included. A deployment's decision failing for what it
        holds dead-letters the batch's last review of it. A shadow replay counts as a review: it brought
        paired evidence."""
        last: dict[UUID, SourceRecord] = {}
        for record in records:
            reviewed: PredictionReviewed | ShadowReplayed | None = await self.dead_letters.decoded(record)
            if reviewed is not None:
                last.pop(reviewed.deployment_id, None)
                last[reviewed.deployment_id] = record
        for deployment_id, record in last.items():
            async with self.dead_letters.guard(record):
                await self.gate(deployment_id)

    async def gate(self, deployment_id: UUID) -> None:
        decision = await evaluate(self.pool, self.settings, deployment_id)
        if decision is None:
            return
        metrics.GATE_DECISIONS.labels(str(deployment_id), decision.outcome.value).inc()
        self.outbox_wake.set()
        logger.info(
            "promotion gate decided",
            extra={"deployment_id": str(deployment_id), "gate": decision.model_dump(mode="json")},
        )
