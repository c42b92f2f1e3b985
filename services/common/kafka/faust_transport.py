"""faust's aiokafka transport with a short fetch wait.

faust-streaming 0.15 builds its worker consumer with `fetch_max_wait_ms=1500` written into the call
(`AIOKafkaConsumerThread._create_worker_consumer`), not taken from its settings. aiokafka sends one fetch
per broker for all assigned partitions, and does not fetch a partition again while an earlier fetch is
in flight; a fetch that covers only idle partitions waits out its 1.5 s on the broker, so a busy
partition sharing the broker with idle ones stalls for over a second between batches. This transport's
consumer waits `fetch_max_wait_ms` instead; everything else is faust's own.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

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


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ShortFetchTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = _Consumer

    def __init__(self, *args: Any, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def use_short_fetch_transport(app: faust.App, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Give `app` the transport above; call it before the app is started."""
    app.transport = ShortFetchTransport(app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms)
