"""Recording monitored predictions: the predicted asset (and, for HTTP, its event in the outbox) in one
statement, so the image's uniqueness in its deployment decides atomically which request created it;
then the event published.

Nothing is lost when the process dies between steps. Before the commit nothing happened: an HTTP client
got no 201, a raw message was not committed and comes again. After it: an HTTP prediction's event waits
in the outbox until Kafka acknowledged it, and the relay publishes it otherwise; a raw message comes
again (its offset is committed only after the publish) and finds its prediction recorded under the same
derived id, so its event is published again — a duplicate with the same event id, which readers skip.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from aiokafka.errors import KafkaError

from schemas.events import PredictionLogged
from schemas.topics import Topic
from services.common.db.repositories.predicted_assets import (
    insert_predictions,
    insert_predictions_with_events,
    predictions_of_images,
)
from services.common.kafka.failures import isolate
from services.common.kafka.producer import EventProducer

from . import intake, outbox

logger = logging.getLogger(__name__)
Row = tuple[UUID, PredictionLogged]  # (project id, event)


@dataclass(frozen=True)
class Recorded:
    prediction_id: UUID  # the new one, or the one already recorded for the image
    created: bool

    def is_replay_of(self, event: PredictionLogged) -> bool:
        """Recorded before under this very id: the same message handled again."""
        return not self.created and self.prediction_id == event.prediction_id


async def record(
    pool: asyncpg.Pool,
    producer: EventProducer,
    rows: Sequence[Row],
    *,
    acknowledged: outbox.Acknowledged | None = None,
) -> list[Recorded]:
    """Record (project id, event) rows and publish the new ones; one answer per row, in order.

    With `acknowledged` (HTTP), each event is kept in the outbox with its row until Kafka acknowledged
    it. Without (predictions.raw), the source's redelivery stands in for the outbox, and a replayed
    row's event is published again."""
    if not rows:
        return []
    async with pool.acquire() as conn:
        if acknowledged is not None:
            inserted = await insert_predictions_with_events(
                conn, rows, Topic.PREDICTIONS, acknowledged.relay_after_s
            )
        else:
            inserted = await insert_predictions(conn, rows)
        others = [event for _, event in rows if event.prediction_id not in inserted]
        existing = await _existing(conn, others) if others else {}
    results = [
        Recorded(event.prediction_id, True)
        if event.prediction_id in inserted
        # Not found by image: the conflict was on the prediction id itself (a redelivered message).
        else Recorded(existing.get((event.deployment_id, event.image.sha256), event.prediction_id), False)
        for _, event in rows
    ]
    publish = [
        event
        for (_, event), result in zip(rows, results, strict=True)
        if result.created or (acknowledged is None and result.is_replay_of(event))
    ]
    try:
        await producer.publish_many(Topic.PREDICTIONS, publish)
    except (KafkaError, OSError, TimeoutError) as exc:
        if acknowledged is None:
            raise  # the source keeps the messages: they come again
        # Recorded, and kept in the outbox: the relay publishes them once Kafka is back.
        logger.error("publishing failed; the outbox relay will publish", extra={"error": repr(exc)})
        return results
    if acknowledged is not None:
        acknowledged.add([event.event_id for event in publish])
    return results


async def record_each(
    pool: asyncpg.Pool, producer: EventProducer, rows: Sequence[Row], *, acknowledged: outbox.Acknowledged
) -> list[Recorded | intake.Refused]:
    """`record` for rows of different requests or items: a row refused for what it holds (a value
    Postgres refuses, a model version outside the project, an event too large) fails its statement, so
    the rows are halved until it stands alone (failures.isolate); it answers its refusal, the others are
    recorded. An outage fails them all."""
    recorded: dict[int, Recorded] = {}

    async def apply(part: list[tuple[int, Row]]) -> list[None]:
        results = await record(pool, producer, [row for _, row in part], acknowledged=acknowledged)
        recorded.update((i, result) for (i, _), result in zip(part, results, strict=True))
        return [None] * len(part)

    outcomes = await isolate(list(enumerate(rows)), apply)
    return [recorded[i] if outcome is None else intake.refusal(outcome) for i, outcome in enumerate(outcomes)]


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


@dataclass
class RecordingQueue:
    """Concurrent HTTP requests recorded together: each one waits for its answer while the rows that
    arrived meanwhile share one transaction and one publishing round (at most `in_flight` at once)."""

    pool: asyncpg.Pool
    producer: EventProducer
    acknowledged: outbox.Acknowledged
    in_flight: int = 2  # few: the requests arriving while these run wait and go together
    _pending: list[tuple[Row, asyncio.Future[Recorded]]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def record(self, row: Row) -> Recorded:
        """The row's answer; intake.Refused when it alone was refused for what it holds."""
        answer: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._pending.append((row, answer))
        self._arrived.set()
        return await answer

    async def run(self) -> None:
        """Flush what is pending whenever a slot is free; runs until cancelled."""
        slots = asyncio.Semaphore(self.in_flight)
        flushes: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._arrived.wait()
                await slots.acquire()
                self._arrived.clear()
                batch, self._pending = self._pending, []
                if not batch:
                    slots.release()
                    continue
                task = asyncio.create_task(self._flush(batch, slots))
                flushes.add(task)
                task.add_done_callback(flushes.discard)
        finally:
            for task in flushes:
                task.cancel()
            for _, answer in self._pending:
                answer.cancel()

    async def _flush(
        self, batch: list[tuple[Row, asyncio.Future[Recorded]]], slots: asyncio.Semaphore
    ) -> None:
        try:
            results = await record_each(
                self.pool, self.producer, [row for row, _ in batch], acknowledged=self.acknowledged
            )
        except asyncio.CancelledError:
            for _, answer in batch:
                answer.cancel()
            raise
        except Exception as exc:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
        else:
            for (_, answer), result in zip(batch, results, strict=True):
                if answer.done():
                    continue
                if isinstance(result, intake.Refused):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)
        finally:
            slots.release()
