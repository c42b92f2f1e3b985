"""The local Kafka-protocol broker: tansu (see `tansu`), or librdkafka's mock cluster when
CVLOOP_KAFKA_BROKER=mock (see `kafka_broker`); real Kafka in production, through KAFKA_BOOTSTRAP_SERVERS."""

from __future__ import annotations

import sys

from confluent_kafka.admin import AdminClient

from schemas.local_stack import LOCAL_HOST
from schemas.topics import TOPICS
from services.common.kafka.admin import create_topics
from services.common.settings import Broker

from .component import Component
from .kafka_broker import MISSING_LIBRDKAFKA, find_librdkafka, write_atomically
from .process import StackError, port_open, spawn, wait_until
from .tansu import MISSING_TANSU, tansu_argv, tansu_binary

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

    @property
    def tansu(self) -> bool:
        return self.settings.kafka_broker is Broker.TANSU

    @property
    def ports(self) -> list[int]:
        return [self.settings.kafka_port] if self.tansu else []

    def install(self) -> None:
        if self.tansu and tansu_binary() is None:
            raise StackError(f"kafka: {MISSING_TANSU}")
        if not self.tansu and find_librdkafka() is None:
            raise StackError(f"kafka: {MISSING_LIBRDKAFKA}")

    def launch(self) -> None:
        # A stale address from a broker that died would make probe() talk to nothing, or to a stranger.
        self.settings.kafka_bootstrap_file.unlink(missing_ok=True)
        if self.tansu:
            self._launch_tansu()
            return
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

    def _launch_tansu(self) -> None:
        binary = tansu_binary()
        assert binary is not None  # install() checked
        # Tansu logs every request at its default level; warnings are what the log is for.
        spawn(tansu_argv(binary, self.settings.kafka_port), workdir=self.workdir, env={"RUST_LOG": "warn"})
        if not wait_until(lambda: port_open(LOCAL_HOST, self.settings.kafka_port), self.start_timeout):
            return  # start() reports it with the log's tail
        write_atomically(self.settings.kafka_bootstrap_file, f"{LOCAL_HOST}:{self.settings.kafka_port}")
        # The same path as production's `cvloop topics create`: the admin API, with each topic's configs.
        failed = [
            (name, outcome) for name, outcome in create_topics(self.settings) if outcome.startswith("failed")
        ]
        if failed:
            raise StackError(f"kafka: tansu refused topics: {failed}")

    def probe(self) -> bool:
        if not self.settings.kafka_bootstrap_file.exists():
            return False
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap_servers, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=PROBE_TIMEOUT_S)
        except Exception:  # KafkaException when nothing answers in time
            return False
        return {str(name) for name in TOPICS} <= set(metadata.topics)
