"""A consumer kept going through outages, and honest about it. When consuming fails (Kafka or Postgres
gone, or an error nobody classified), the consumer is stopped with what it held uncommitted and, after a
pause that doubles up to `MAX_RESTART_DELAY_S`, a new one connects, so those records are read again
(handlers are idempotent). Meanwhile its `Progress` says it is stalled (readiness fails, the
`cvloop_consumer_stalled` gauge is 1) until it gets through a batch again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from .metrics import FAILED_ATTEMPTS, STALLED

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 2.0
MAX_RESTART_DELAY_S = 30.0


class Progress:
    """Whether a consumer moves: stalled from a failed attempt until it next gets through a batch."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failure: BaseException | None = None
        self.failed_attempts = 0  # in a row
        STALLED.labels(name).set(0)

    def failed(self, error: BaseException) -> None:
        self.failure = error
        self.failed_attempts += 1
        STALLED.labels(self.name).set(1)
        FAILED_ATTEMPTS.labels(self.name).inc()

    def moved(self) -> None:
        if self.failure is not None:
            logger.info(
                "consumer resumed", extra={"consumer": self.name, "failed_attempts": self.failed_attempts}
            )
            self.failure = None
            self.failed_attempts = 0
            STALLED.labels(self.name).set(0)

    def delay_s(self, first_s: float) -> float:
        """The pause before the next attempt: doubled after each failure in a row, up to the maximum."""
        return min(MAX_RESTART_DELAY_S, first_s * 2 ** max(self.failed_attempts - 1, 0))

    def problem(self) -> str | None:
        """Why the consumer is not ready, for /readyz; None while it moves."""
        return None if self.failure is None else f"{self.name} cannot make progress: {self.failure!r}"


async def until_done(progress: Progress, work: Callable[[], Awaitable[object]], first_delay_s: float) -> None:
    """Await `work` until it succeeds, pausing (doubling up to the maximum) after each failure. For a
    stream's agent: what it holds stays unacknowledged while it retries, so nothing is committed past an
    effect that did not happen. `work` handles its message errors itself; whatever escapes is an outage."""
    while True:
        try:
            await work()
        except Exception as exc:
            progress.failed(exc)
            delay = progress.delay_s(first_delay_s)
            logger.error(
                "consumer failed; retrying",
                extra={"consumer": progress.name, "error": repr(exc), "retry_in_s": delay},
            )
            await asyncio.sleep(delay)
        else:
            progress.moved()
            return


class Stoppable(Protocol):
    async def stop(self) -> None: ...


C = TypeVar("C", bound=Stoppable)


class SupervisedConsumer(Generic[C]):
    """`connect` answers a started consumer, `consume` reads it until the run's `stop` is set (or until it
    fails); both are tried again after a pause when they raise. `consume` reports each batch it got through
    to `progress` (process and process_batches take it)."""

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
        self.progress = Progress(name)
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
                self.progress.failed(failure)
                delay = self.progress.delay_s(self.restart_delay_s)
                logger.error(
                    "consumer stopped; restarting",
                    extra={"consumer": self.name, "error": repr(failure), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
