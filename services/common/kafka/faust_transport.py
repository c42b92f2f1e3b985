"""faust's aiokafka transport with a short fetch wait, and a seek to the committed offsets that also
rewinds partitions without a commit.

faust-streaming 0.15 builds its worker consumer with `fetch_max_wait_ms=1500` written into the call
(`AIOKafkaConsumerThread._create_worker_consumer`), not taken from its settings. aiokafka sends one fetch
per broker for all assigned partitions, and does not fetch a partition again while an earlier fetch is
in flight; a fetch that covers only idle partitions waits out its 1.5 s on the broker, so a busy
partition sharing the broker with idle ones stalls for over a second between batches. This transport's
consumer waits `fetch_max_wait_ms` instead.

After a rebalance a faust worker fetches its new partitions while its tables recover and hands what it
fetched to its streams; when recovery ends it seeks every partition to its committed offset, clears the
streams' queues and resumes its flow, so that what was dropped is read again. Two gaps lost records for
good, and the worker waited for new ones on the partitions it had taken over (issue 16,
docs/local-stack.md): the flow ran on during the seek, so records handed over after a partition's seek
were cleared; and aiokafka's `seek_to_committed` seeks only where the committed offset is above 0, so a
partition taken over from a worker killed before its first commit stayed where the fetcher had got to.
This transport's consumer stops its flow before the seek (faust resumes it after the clear), and seeks
a partition without a commit to where a new group would start, by the app's
`consumer_auto_offset_reset`. Everything else is faust's own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, ClassVar, cast

import aiokafka
import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

# Long enough that an idle consumer does not poll the broker in a busy loop, short enough that a fetch
# for idle partitions does not hold back the busy ones for long.
FETCH_MAX_WAIT_MS = 50


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # The consumer is not started yet: `start()` hands this value to the fetcher it creates
        # (aiokafka 0.14, pinned; tests/integration/test_kafka.py checks the fetcher receives it).
        consumer._fetch_max_wait_ms = cast(ShortFetchTransport, transport).fetch_max_wait_ms
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        # faust's `perform_seek`: after recovery, and when records come while its flow is stopped.
        changelogs = set(self.app.tables.changelog_topics)
        reset = self.app.conf.consumer_auto_offset_reset
        return await self.call_thread(seek_to_committed_or_reset, self._ensure_consumer(), reset, changelogs)


async def seek_to_committed_or_reset(
    consumer: aiokafka.AIOKafkaConsumer, reset: str, changelogs: Collection[str]
) -> dict[TopicPartition, int | None]:
    """Seek every assigned partition to its committed offset, as aiokafka's `seek_to_committed`, and
    also those it leaves alone: a committed 0 to 0, no commit to the start `reset` names ("earliest" or
    "latest"), so records fetched and not handled since are read again. Tables' changelogs are never
    committed and stay as they are: recovery seeks them itself, and a standby reads on. Returns the
    committed offsets."""
    committed: dict[TopicPartition, int | None] = await consumer.seek_to_committed()
    streamed = {tp: offset for tp, offset in committed.items() if tp.topic not in changelogs}
    for tp, offset in streamed.items():
        if offset == 0:
            consumer.seek(tp, 0)
    uncommitted = [tp for tp, offset in streamed.items() if offset is None]
    if uncommitted and reset == "earliest":
        await consumer.seek_to_beginning(*uncommitted)
    elif uncommitted and reset == "latest":
        await consumer.seek_to_end(*uncommitted)
    return committed


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        # Its callers clear the streams' queues after it and only then resume the flow; a record handed
        # to a stream meanwhile (the fetcher runs on during the seek's round trips) was cleared after the
        # seek and never read again. Stopped first, nothing is handed over until they resume it.
        self.stop_flow()
        await super().perform_seek()


class ShortFetchTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = _Consumer

    def __init__(self, *args: Any, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def use_short_fetch_transport(app: faust.App, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Give `app` the transport above; call it before the app is started."""
    app.transport = ShortFetchTransport(app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms)
