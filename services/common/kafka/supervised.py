"""A consumer kept going through outages: when consuming fails (Kafka or Postgres gone), the consumer is
stopped with what it held uncommitted and, after a pause, a new one connects, so those records are read
again (handlers are idempotent)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 2.0


class Stoppable(Protocol):
    async def stop(self) -> None: ...


C = TypeVar("C", bound=Stoppable)


class SupervisedConsumer(Generic[C]):
    """`connect` answers a started consumer, `consume` reads it until the run's `stop` is set (or until it
    fails); both are tried again after `restart_delay_s` when they raise."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], Awaitable[C]],
        consume: Callable[[C], Awaitable[None]],
        restart_delay_s: float = RESTART_DELAY_S,
    ) -> None:
        self.name = name
        self.connect = connect
        self.consume = consume
        self.restart_delay_s = restart_delay_s
        self.connected = False  # from a connect until its consumer is stopped

    async def run(self, stop: asyncio.Event | None = None, first: C | None = None) -> None:
        """Until `stop` is set, or the task is cancelled (the consumer is stopped either way). `first`: a
        consumer connected already, consumed before any `connect`."""
        consumer = first
        while stop is None or not stop.is_set():
            failure: Exception | None = None
            try:
                if consumer is None:
                    consumer = await self.connect()
                self.connected = True
                await self.consume(consumer)
            except Exception as exc:
                failure = exc
            finally:
                self.connected = False
                if consumer is not None:
                    stopping, consumer = consumer, None
                    await stopping.stop()
            if failure is not None:
                logger.error(
                    "consumer stopped; restarting", extra={"consumer": self.name, "error": repr(failure)}
                )
                await asyncio.sleep(self.restart_delay_s)
