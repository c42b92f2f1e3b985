"""Draining the local broker before it stops: it keeps messages in memory only, so `cvloop down` waits
until every running consumer group has read what was produced to the topics it reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import CONSUMED, TOPICS, ConsumerGroup
from services.common.settings import Settings

# Per group, per topic: messages produced that the group has not committed as read (only those > 0).
Unread = dict[ConsumerGroup, dict[str, int]]

# A consumer that read a message commits after producing what follows from it, so a group at its end
# and another one not yet behind can be seen together once; two rounds in a row at zero cannot.
QUIET_ROUNDS = 2
POLL_S = 0.5
UNANSWERED_S = 15.0


def _partitions(group: ConsumerGroup) -> list[TopicPartition]:
    return [
        TopicPartition(str(topic), partition)
        for topic in CONSUMED[group]
        for partition in range(TOPICS[topic].partitions)
    ]


class LagReader:
    """Reads consumer groups' committed offsets and the topics' ends from the broker."""

    def __init__(self, settings: Settings) -> None:
        self._offsets = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)

    async def __aenter__(self) -> LagReader:
        await self._offsets.start()
        await self._admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()
        await self._offsets.stop()

    async def unread(self, groups: Collection[ConsumerGroup]) -> Unread:
        behind: Unread = {}
        for group in groups:
            partitions = _partitions(group)
            ends = await self._offsets.end_offsets(partitions)
            starts = await self._offsets.beginning_offsets(partitions)
            committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
            for tp in partitions:
                meta = committed.get(tp)
                # A group that never committed on a partition starts at its beginning ("earliest").
                read = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
                if ends[tp] > read:
                    topics = behind.setdefault(group, {})
                    topics[tp.topic] = topics.get(tp.topic, 0) + ends[tp] - read
        return behind


async def drain(
    settings: Settings, running: Collection[ConsumerGroup], timeout_s: float
) -> tuple[Unread, float]:
    """Wait until the running groups have read everything (or timeout_s passed); answer what every
    group of the registry still has unread then, and the seconds waited."""
    started = time.monotonic()
    # Bounded even when the broker stops answering (a request's own timeout is 40 s).
    async with asyncio.timeout(timeout_s + UNANSWERED_S), LagReader(settings) as lag:
        quiet = 0
        while quiet < QUIET_ROUNDS and time.monotonic() - started < timeout_s:
            quiet = quiet + 1 if not await lag.unread(running) else 0
            if quiet < QUIET_ROUNDS:
                await asyncio.sleep(POLL_S)
        return await lag.unread(list(CONSUMED)), time.monotonic() - started


def describe(unread: Unread) -> str:
    return "; ".join(
        f"{group} has {count} unread on {topic}"
        for group, topics in unread.items()
        for topic, count in topics.items()
    )
