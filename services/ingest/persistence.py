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

from schemas.events import PredictionLogged
from services.common.db.repositories.base import NotFound
from services.common.db.repositories.predicted_assets import insert_prediction, insert_predictions

from .deployments import UnknownDeployment, deployments_by_id
from .metrics import CONSUMED, PERSISTED

CONSUMER = "cvloop-ingest-persistence"


@dataclass(frozen=True)
class PersistenceHandler:
    pool: asyncpg.Pool

    async def __call__(self, events: list[PredictionLogged]) -> Sequence[Exception | None]:
        deployments = await deployments_by_id(self.pool, (e.deployment_id for e in events))
        outcomes: list[Exception | None] = [
            None if e.deployment_id in deployments else UnknownDeployment(e.deployment_id) for e in events
        ]
        rows = [
            (deployments[e.deployment_id].project_id, e) for e in events if e.deployment_id in deployments
        ]
        try:
            inserted = len(await insert_predictions(self.pool, rows))
        except NotFound:
            # A model version outside the deployment's project fails the whole statement: find which.
            inserted = 0
            for i, event in enumerate(events):
                if outcomes[i] is None:
                    try:
                        inserted += await insert_prediction(
                            self.pool, deployments[event.deployment_id].project_id, event
                        )
                    except NotFound as exc:
                        outcomes[i] = exc
        PERSISTED.labels("inserted").inc(inserted)
        PERSISTED.labels("recorded").inc(sum(o is None for o in outcomes) - inserted)
        for outcome in outcomes:
            CONSUMED.labels("persistence", "done" if outcome is None else "dead_lettered").inc()
        return outcomes
