"""Following the `deployments` topic: each DeploymentUpdated carries a deployment's whole routing state,
so serving re-routes that deployment from the event alone (its project comes from Postgres).

Every serving process must see every event, so each one joins its own consumer group, positioned at
the topic's end *before* reading Postgres: a change committed after that read is in the topic after
that position, so none is missed."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from schemas.codec import decode
from schemas.events import DeploymentChange, DeploymentUpdated
from schemas.topics import Topic
from services.common.db.repositories.base import Db
from services.common.db.repositories.deployments import project_of
from services.common.kafka.consumer import consumer_at_end, process
from services.common.kafka.producer import EventProducer
from services.common.kafka.supervised import SupervisedConsumer
from services.common.settings import Settings

from . import catalog
from .replay import ShadowReplayer
from .router import Router
from .routing import DeploymentState

CONSUMER = "serving"
RETRY_S = 1.0


class DeploymentFollower:
    """Routes every deployment from Postgres, then keeps routing from the topic. When following fails
    (Kafka or Postgres gone), it starts over: a new position at the topic's end, a new full read."""

    def __init__(
        self,
        settings: Settings,
        db: Db,
        router: Router,
        dead_letters: EventProducer,
        replayer: ShadowReplayer,
    ) -> None:
        self.settings = settings
        self.db = db
        self.router = router
        self.replayer = replayer
        self.dead_letters = dead_letters
        self.following = False  # between a sync and a failure: routing is current

    async def handle(self, event: DeploymentUpdated) -> None:
        if event.change == DeploymentChange.DELETED:
            await self.router.remove(event.deployment_id)
            return
        project_id = await project_of(self.db, event.deployment_id)
        if project_id is None:
            raise LookupError(f"deployment {event.deployment_id} is not in Postgres")
        route = await self.router.apply(DeploymentState.from_event(event, project_id))
        if event.change == DeploymentChange.SHADOW_SET:
            self.replayer.request(route)

    async def sync(self) -> AIOKafkaConsumer:
        """A consumer at the topic's end, and every deployment routed as Postgres has it now."""
        consumer = await consumer_at_end(self.settings, "cvloop-serving", Topic.DEPLOYMENTS)
        try:
            states = await catalog.deployment_states(self.db)
            for gone in set(self.router.routes) - {state.deployment_id for state in states}:
                await self.router.remove(gone)
            for state in states:
                # A replay a stopped process left unfinished is resumed (a finished one is not rerun).
                self.replayer.request(await self.router.apply(state))
            self.following = True
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def follow(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Until `stop`: handle each event from `consumer` (a `sync`'s); after a failure, wait and `sync`
        again."""

        async def consume(synced: AIOKafkaConsumer) -> None:
            try:
                await process(
                    synced,
                    decode,
                    self.handle,
                    self.dead_letters,
                    name=CONSUMER,
                    stop=stop,
                    progress=supervised.progress,
                )
            finally:
                self.following = False

        supervised = SupervisedConsumer(CONSUMER, self.sync, consume, RETRY_S)
        await supervised.run(stop, first=consumer)
