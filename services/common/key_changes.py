"""Following `api-keys`: a service that trusts live API keys for a while (services/common/auth.py,
`remember_s`) forgets a key as soon as the api reports it revoked or given other scopes, so its next
request is checked against Postgres again.

The api writes each change's event through its outbox in the change's transaction, so no committed
change goes unreported. Every process reads the topic in a group of its own from the topic's end, and
forgets every key whenever it (re)connects: what changed while it was not following is not known, and
Postgres is. While Kafka is down the keys' `remember_s` bounds how long a change goes unseen."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer

from schemas.codec import decode
from schemas.events import ApiKeyChanged
from schemas.topics import Topic

from .auth import RequireScope
from .kafka.consumer import consumer_at_end, process
from .kafka.producer import EventProducer
from .kafka.supervised import SupervisedConsumer
from .settings import Settings

RETRY_S = 1.0


class KeyChanges:
    """Keeps `checks` forgetting the keys that change, until the run's `stop` is set."""

    def __init__(
        self, settings: Settings, service: str, checks: Sequence[RequireScope], dead_letters: EventProducer
    ) -> None:
        self.settings = settings
        self.name = f"cvloop-{service}-api-keys"
        self.checks = checks
        self.dead_letters = dead_letters

    async def handle(self, event: ApiKeyChanged) -> None:
        for check in self.checks:
            check.forget(event.api_key_id)

    async def connect(self) -> AIOKafkaConsumer:
        consumer = await consumer_at_end(self.settings, self.name, Topic.API_KEYS)
        for check in self.checks:
            check.forget_all()
        return consumer

    async def run(self, stop: asyncio.Event) -> None:
        async def consume(consumer: AIOKafkaConsumer) -> None:
            await process(consumer, decode, self.handle, self.dead_letters, name=self.name, stop=stop)

        await SupervisedConsumer(self.name, self.connect, consume, RETRY_S).run(stop)
