"""The supervised consumer's restart loop, on plain asyncio stand-ins for a consumer."""

from __future__ import annotations

import asyncio

import pytest

from services.common.kafka.supervised import SupervisedConsumer


class Consumer:
    def __init__(self, number: int) -> None:
        self.number = number
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


class Connections:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures  # connects that fail before one succeeds
        self.made: list[Consumer] = []

    async def connect(self) -> Consumer:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.made.append(Consumer(len(self.made)))
        return self.made[-1]


async def test_a_failed_consumer_is_stopped_and_a_new_one_consumes_until_stop() -> None:
    connections, stop = Connections(failures=1), asyncio.Event()
    consumed: list[int] = []

    async def consume(consumer: Consumer) -> None:
        consumed.append(consumer.number)
        if consumer.number == 0:
            raise OSError("connection lost")
        stop.set()

    supervised = SupervisedConsumer("test", connections.connect, consume, restart_delay_s=0)
    await asyncio.wait_for(supervised.run(stop), timeout=5)

    assert consumed == [0, 1]
    assert all(consumer.stopped for consumer in connections.made)
    assert not supervised.connected


async def test_the_first_consumer_given_is_consumed_before_any_connect() -> None:
    connections, stop = Connections(), asyncio.Event()
    first = Consumer(-1)
    consumed: list[int] = []

    async def consume(consumer: Consumer) -> None:
        consumed.append(consumer.number)
        if consumer is first:
            raise OSError("connection lost")
        stop.set()

    supervised = SupervisedConsumer("test", connections.connect, consume, restart_delay_s=0)
    await asyncio.wait_for(supervised.run(stop, first=first), timeout=5)

    assert consumed == [-1, 0]
    assert first.stopped and connections.made[0].stopped


async def test_cancelling_stops_the_consumer_and_ends_the_run() -> None:
    connections = Connections()
    consuming = asyncio.Event()

    async def consume(_: Consumer) -> None:
        consuming.set()
        await asyncio.Event().wait()

    supervised = SupervisedConsumer("test", connections.connect, consume, restart_delay_s=0)
    run = asyncio.create_task(supervised.run())
    await asyncio.wait_for(consuming.wait(), timeout=5)
    assert supervised.connected
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    (consumer,) = connections.made
    assert consumer.stopped
    assert not supervised.connected
