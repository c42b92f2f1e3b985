"""Persistence: every `predictions` event becomes a predicted asset in TO_REVIEW.

It lives in ingest because ingest is where predictions enter the platform's state: serving only
publishes (its answer must not wait on Postgres), and the api answers people. Ingest's own predictions
are recorded before they are published (recorder.py), so for them this is a no-op; serving's are
written here. The write is idempotent by prediction id and by image per deployment
(`insert_predictions`' ON CONFLICT DO NOTHING), so a replayed partition adds no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import orjson

from schemas.codec import decode
from schemas.events import PredictionLogged, PredictionSource
from schemas.topics import ConsumerGroup
from services.common.db.repositories.predicted_assets import insert_predictions

from .deployments import UnknownDeployment, deployments_by_id
from .metrics import CONSUMED, PERSISTED

CONSUMER = ConsumerGroup.INGEST_PERSISTENCE
RECORDED_BY_INGEST = frozenset({PredictionSource.MONITOR_API, PredictionSource.KAFKA})


def decode_unrecorded(topic: str, value: bytes) -> PredictionLogged | None:
    """The event, or None for one ingest recorded itself: its source is read without validating the
    whole event, which ingest did when it made it."""
    try:
        source = orjson.loads(value).get("source")
    except (orjson.JSONDecodeError, AttributeError):
        source = None  # the full decode below says what is wrong
    if source in RECORDED_BY_INGEST:
        return None
    return decode(topic, value)


@dataclass(frozen=True)
class PersistenceHandler:
    pool: asyncpg.Pool

    async def __call__(self, received: list[PredictionLogged | None]) -> Sequence[Exception | None]:
        answers: list[Exception | None] = [None] * len(received)
        wanted = [i for i, event in enumerate(received) if event is not None]
        PERSISTED.labels("recorded").inc(len(received) - len(wanted))
        if wanted:
            events = [event for event in received if event is not None]
            for i, outcome in zip(wanted, await self._write(events), strict=True):
                answers[i] = outcome
        for answer in answers:
            CONSUMED.labels("persistence", "done" if answer is None else "dead_lettered").inc()
        return answers

    async def _write(self, events: list[PredictionLogged]) -> list[Exception | None]:
        deployments = await deployments_by_id(self.pool, (e.deployment_id for e in events))
        outcomes: list[Exception | None] = [
            None if e.deployment_id in deployments else UnknownDeployment(e.deployment_id) for e in events
        ]
        rows = [
            (deployments[e.deployment_id].project_id, e) for e in events if e.deployment_id in deployments
        ]
        # A row Postgres refuses (a foreign model version, NUL in a text) fails the whole statement: the
        # consumer then halves the batch until that event stands alone, and dead-letters it.
        inserted = len(await insert_predictions(self.pool, rows))
        PERSISTED.labels("inserted").inc(inserted)
        PERSISTED.labels("recorded").inc(sum(o is None for o in outcomes) - inserted)
        return outcomes
