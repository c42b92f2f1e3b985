"""Following the `deployments` topic: each DeploymentUpdated carries a deployment's whole routing state,
so serving re-routes that deployment from the event alone (its project comes from Postgres).

Every serving process must see every event, so each one joins its own consumer group, positioned at
the topic's end *before* reading Postgres: a change committed after that read is in the topic after
that position, so none is missed."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer

from schemas.codec import decode
from schemas.events import DeploymentChange, DeploymentUpdated
from schemas.topics import Topic
from services.common.db.repositories.base import Db
from services.common.db.repositories.deployments import project_of
from services.common.kafka.consumer import create_consumer, process
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings

from .router import Router
from .routing import DeploymentState

CONSUMER = "serving"


def consumer_group() -> str:
    return f"cvloop-serving-{uuid.uuid4()}"


async def start_consumer(settings: Settings, timeout_s: float = 30.0) -> AIOKafkaConsumer:
    """A started consumer with its partitions assigned and positioned at their current end."""
    consumer = create_consumer(settings, consumer_group(), Topic.DEPLOYMENTS, auto_offset_reset="latest")
    await consumer.start()
    try:
        async with asyncio.timeout(timeout_s):
            while not consumer.assignment():
                # Polling drives the group join; anything it returns is read again by the loop.
                for partition, records in (await consumer.getmany(timeout_ms=100)).items():
                    consumer.seek(partition, records[0].offset)
            for partition in consumer.assignment():
                await consumer.position(partition)  # resolves "latest" now, not at the first fetch
    except BaseException:
        await consumer.stop()
        raise
    return consumer


class DeploymentFollower:
    def __init__(self, db: Db, router: Router) -> None:
        self.db = db
        self.router = router

    async def handle(self, event: DeploymentUpdated) -> None:
        if event.change == DeploymentChange.DELETED:
            await self.router.remove(event.deployment_id)
            return
        project_id = await project_of(self.db, event.deployment_id)
        if project_id is None:
            raise LookupError(f"deployment {event.deployment_id} is not in Postgres")
        await self.router.apply(DeploymentState.from_event(event, project_id))

    async def run(self, consumer: AIOKafkaConsumer, dead_letters: EventProducer, stop: asyncio.Event) -> None:
        await process(consumer, decode, self.handle, dead_letters, name=CONSUMER, stop=stop)
