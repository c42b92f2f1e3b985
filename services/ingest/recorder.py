"""Recording monitored predictions: the predicted asset and its event in one transaction (so the image's
uniqueness in its deployment decides atomically which request created it), then the event published.

Nothing is lost when the process dies between steps: before the commit nothing happened (the client
gets no 201, a raw message is not committed and comes again); after it, the outbox row holds the event
until Kafka acknowledged it, and the relay publishes it otherwise.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from schemas.events import PredictionLogged
from schemas.topics import Topic
from services.common.db.repositories.predicted_assets import insert_predictions, predictions_of_images
from services.common.kafka.producer import EventProducer

from . import outbox


@dataclass(frozen=True)
class Recorded:
    prediction_id: UUID  # the new one, or the one already recorded for the image
    created: bool


async def record(
    pool: asyncpg.Pool, producer: EventProducer, rows: Sequence[tuple[UUID, PredictionLogged]]
) -> list[Recorded]:
    """Record (project id, event) pairs and publish the new ones; one answer per pair, in order."""
    if not rows:
        return []
    async with pool.acquire() as conn:
        async with conn.transaction():
            inserted = await insert_predictions(conn, rows)
            new = [event for _, event in rows if event.prediction_id in inserted]
            await outbox.add(conn, new)
        existing = await _existing(conn, [event for _, event in rows if event.prediction_id not in inserted])
        await asyncio.gather(*(producer.publish(Topic.PREDICTIONS, event) for event in new))
        await outbox.remove(conn, [event.event_id for event in new])
    return [
        Recorded(event.prediction_id, True)
        if event.prediction_id in inserted
        # Not found by image: the conflict was on the prediction id itself (a redelivered raw message).
        else Recorded(existing.get((event.deployment_id, event.image.sha256), event.prediction_id), False)
        for _, event in rows
    ]


async def _existing(
    conn: asyncpg.Connection, events: Sequence[PredictionLogged]
) -> dict[tuple[UUID, str], UUID]:
    by_deployment: dict[UUID, list[str]] = defaultdict(list)
    for event in events:
        by_deployment[event.deployment_id].append(event.image.sha256)
    found: dict[tuple[UUID, str], UUID] = {}
    for deployment_id, sha256s in by_deployment.items():
        for sha256, prediction_id in (await predictions_of_images(conn, deployment_id, sha256s)).items():
            found[(deployment_id, sha256)] = prediction_id
    return found
