"""The local Kafka-protocol broker: librdkafka's mock cluster, reached through ctypes on the librdkafka
that the confluent-kafka wheel bundles. No real Kafka is installable here, and this mock speaks enough
of the protocol for aiokafka and faust (produce, consume, groups, offsets, idempotence).

Run as `python -m cvloop.stack.kafka_broker --bootstrap-file PATH`: it pre-creates the registry's topics
(the mock refuses CreateTopics from clients), writes its address to PATH and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from services.common.kafka.faust_topics import all_topic_specs
from services.common.logs import configure_logging

logger = logging.getLogger(__name__)

_ERRSTR_SIZE = 512
_RD_KAFKA_PRODUCER = 0


MISSING_LIBRDKAFKA = "the confluent-kafka wheel's librdkafka is missing; run `pip install confluent-kafka`"


def find_librdkafka() -> Path | None:
    """The librdkafka shared library inside the installed confluent-kafka wheel, if any."""
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        return None
    libs = Path(spec.origin).parent.parent / "confluent_kafka.libs"
    return next(iter(sorted(libs.glob("librdkafka-*.so*"))), None)


def provisioned_topics() -> dict[str, int]:
    """Every topic the broker creates at start, with its partition count: the registry's, and the
    internal topics of each faust app (clients cannot create topics on the mock)."""
    return {spec.name: spec.partitions for spec in all_topic_specs()}


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32
    signatures: dict[str, tuple[list[type], type | None]] = {
        "rd_kafka_conf_new": ([], vp),
        "rd_kafka_conf_set": ([vp, cp, cp, cp, ctypes.c_size_t], ctypes.c_int),
        "rd_kafka_new": ([ctypes.c_int, vp, cp, ctypes.c_size_t], vp),
        "rd_kafka_destroy": ([vp], None),
        "rd_kafka_err2str": ([ctypes.c_int], cp),
        "rd_kafka_mock_cluster_new": ([vp, ctypes.c_int], vp),
        "rd_kafka_mock_cluster_destroy": ([vp], None),
        "rd_kafka_mock_cluster_bootstraps": ([vp], cp),
        "rd_kafka_mock_topic_create": ([vp, cp, ctypes.c_int, ctypes.c_int], ctypes.c_int),
        "rd_kafka_mock_set_controller_id": ([vp, i32], None),
        "rd_kafka_mock_group_initial_rebalance_delay_ms": ([vp, i32], None),
    }
    for name, (argtypes, restype) in signatures.items():
        func = getattr(lib, name)
        func.argtypes, func.restype = argtypes, restype
    return lib


class MockCluster:
    """A one-broker mock cluster owned by a producer handle that exists only to host it."""

    def __init__(self, library: Path) -> None:
        self._lib = _load(library)
        self._rk: int | None = None
        self._mc: int | None = None

    def __enter__(self) -> Self:
        lib = self._lib
        conf = lib.rd_kafka_conf_new()
        # The host handle never connects anywhere; without a quiet log level it warns that
        # bootstrap.servers is unset.
        self._set(conf, "log_level", "0")
        errstr = ctypes.create_string_buffer(_ERRSTR_SIZE)
        self._rk = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, _ERRSTR_SIZE)
        if not self._rk:
            raise RuntimeError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._mc = lib.rd_kafka_mock_cluster_new(self._rk, 1)
        if not self._mc:
            lib.rd_kafka_destroy(self._rk)
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        # aiokafka's admin and faust ask for the controller; groups should form without the 3 s delay.
        lib.rd_kafka_mock_set_controller_id(self._mc, 1)
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._mc, 0)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._mc:
            self._lib.rd_kafka_mock_cluster_destroy(self._mc)
        if self._rk:
            self._lib.rd_kafka_destroy(self._rk)
        self._mc = self._rk = None

    def _set(self, conf: int, name: str, value: str) -> None:
        errstr = ctypes.create_string_buffer(_ERRSTR_SIZE)
        if self._lib.rd_kafka_conf_set(conf, name.encode(), value.encode(), errstr, _ERRSTR_SIZE) != 0:
            raise RuntimeError(f"rd_kafka_conf_set({name}) failed: {errstr.value.decode()}")

    @property
    def bootstrap_servers(self) -> str:
        return self._lib.rd_kafka_mock_cluster_bootstraps(self._mc).decode()

    def create_topics(self, topics: Mapping[str, int]) -> None:
        for name, partitions in topics.items():
            err = self._lib.rd_kafka_mock_topic_create(self._mc, name.encode(), partitions, 1)
            if err:
                raise RuntimeError(f"creating topic {name}: {self._lib.rd_kafka_err2str(err).decode()}")


def write_atomically(path: Path, text: str) -> None:
    """Readers never see a half-written address: write beside it, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def serve(library: Path, bootstrap_file: Path) -> None:
    # Block the stop signals before librdkafka starts its threads (which inherit the mask), so they stay
    # pending for sigwait below instead of landing on one of those threads.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with MockCluster(library) as cluster:
        topics = provisioned_topics()
        cluster.create_topics(topics)
        write_atomically(bootstrap_file, cluster.bootstrap_servers)
        logger.info(
            "kafka mock broker serving",
            extra={"bootstrap": cluster.bootstrap_servers, "topics": len(topics)},
        )
        try:
            received = signal.sigwait(stop_signals)
            logger.info("kafka mock broker stopping", extra={"signal": signal.Signals(received).name})
        finally:
            bootstrap_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap-file", type=Path, required=True, help="Where to write the address.")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    library = find_librdkafka()
    if library is None:
        parser.error(MISSING_LIBRDKAFKA)
    serve(library, args.bootstrap_file)


if __name__ == "__main__":
    main()
