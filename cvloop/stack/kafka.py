"""The local Kafka broker: librdkafka's mock cluster (see `kafka_broker`); real Kafka in production,
through KAFKA_BOOTSTRAP_SERVERS."""

from __future__ import annotations

import sys

from confluent_kafka.admin import AdminClient

from schemas.topics import TOPICS

from .component import Component
from .kafka_broker import MISSING_LIBRDKAFKA, find_librdkafka
from .process import StackError, spawn

PROBE_TIMEOUT_S = 2.0


class KafkaBroker(Component):
    name = "kafka"
    start_timeout = 20.0

    @property
    def address(self) -> str:
        try:
            return self.settings.kafka_bootstrap_servers
        except RuntimeError:  # not started yet: its port is chosen at start
            return "(not started)"

    def install(self) -> None:
        if find_librdkafka() is None:
            raise StackError(f"kafka: {MISSING_LIBRDKAFKA}")

    def launch(self) -> None:
        # A stale address from a broker that died would make probe() talk to nothing, or to a stranger.
        self.settings.kafka_bootstrap_file.unlink(missing_ok=True)
        spawn(
            [
                sys.executable,
                "-m",
                "cvloop.stack.kafka_broker",
                "--bootstrap-file",
                str(self.settings.kafka_bootstrap_file),
                "--log-level",
                self.settings.log_level,
            ],
            workdir=self.workdir,
        )

    def probe(self) -> bool:
        if not self.settings.kafka_bootstrap_file.exists():
            return False
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap_servers, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=PROBE_TIMEOUT_S)
        except Exception:  # KafkaException when nothing answers in time
            return False
        return {str(name) for name in TOPICS} <= set(metadata.topics)
