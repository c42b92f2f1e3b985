"""The local broker: tansu (the default) against librdkafka's mock (`CVLOOP_KAFKA_BROKER=mock`, the former
default), each started as `cvloop up` starts it, in one run; the mock is the baseline of every ratio.

1. The broker alone: seconds to healthy, RSS idle and after; messages/s produced onto `predictions`
   (6 partitions, prediction events, acks=all, gzip) through cvloop's own producer (on tansu without
   idempotence and one record per batch, see docs/local-stack.md), then in batches of up to 16 KB
   without idempotence (what a client outside cvloop sends); both read back by one consumer.
2. The local stack without Triton (postgres, kafka, s3, ingest, api, scoring, pipeline, job runner) on
   each broker: seconds until every component is healthy, and the RSS of all their processes.
3. On tansu only (the mock takes one member per group): scoring's throughput with one worker and with
   two (`python -m services.scoring` processes in one consumer group), predictions scored into Postgres
   per second, timed from the first send (in batches) to the last score, the sends' own rate beside it.

    .venv/bin/python -m bench.broker [--messages 20000] [--predictions 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID, uuid4

import numpy as np

from bench.storage import rss_mib
from cvloop.demo.digits import digit_images
from cvloop.demo.scoring import Deployment, classification_deployment, prediction_of, ready_reference
from cvloop.stack import stack
from cvloop.stack.component import Component
from cvloop.stack.process import running_pid
from cvloop.stack.replicas import replicas
from cvloop.stack.scratch import scratch_settings
from cvloop.stack.settings import StackSettings
from schemas.topics import TOPICS, Topic
from services.common.db.pool import open_pool
from services.common.db.repositories import prediction_scores
from services.common.kafka.consumer import started_consumer
from services.common.kafka.producer import EventProducer, keyed_partitioner
from services.common.settings import Broker
from services.common.storage import ObjectStore

BROKERS = (Broker.MOCK, Broker.TANSU)
STACK = ["postgres", "kafka", "s3", "ingest", "api", "scoring", "pipeline", "job_runner"]
CHUNK = 2000
# A producer outside cvloop: aiokafka's default batch size, without idempotence (tansu has none).
BATCHED: dict[str, Any] = {"max_batch_size": 16384, "enable_idempotence": False}


class BrokerFigures(NamedTuple):
    start_s: float
    idle_rss_mib: float
    produced_per_s: float
    batched_per_s: float
    consumed_per_s: float
    loaded_rss_mib: float


class StackFigures(NamedTuple):
    start_s: float
    rss_mib: float


def group_rss_mib(pid: int) -> float:
    """RSS of the process group a component runs in (Postgres's backends, a service's children)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pid:  # the process group id
                total += rss_mib(int(stat.parent.name))
        except (OSError, RuntimeError, IndexError):
            continue  # gone meanwhile
    return total


@contextmanager
def started(broker: Broker, names: list[str]) -> Iterator[tuple[StackSettings, float]]:
    """The components on `broker`, in a state folder of their own; the seconds until all were healthy."""
    state = Path(tempfile.mkdtemp(prefix=f"cvloop-bench-broker-{broker}-"))
    settings = scratch_settings(state).model_copy(update={"kafka_broker_setting": broker})
    try:
        began = time.perf_counter()
        for health in stack.up(settings, names):
            if not health.ok:
                raise SystemExit(f"{health.name} is {health.state}: {health.detail}")
        yield settings, time.perf_counter() - began
    finally:
        for _ in stack.down(settings, names):
            pass
        shutil.rmtree(state, ignore_errors=True)


def _pid(component: Component) -> int:
    pid = running_pid(component.workdir)
    assert pid is not None, component.name
    return pid


async def produced_per_s(
    settings: StackSettings, payloads: list[tuple[bytes, bytes]], **overrides: Any
) -> float:
    """Messages/s sent through cvloop's producer (with `overrides`), CHUNK sends awaited together."""
    async with EventProducer.from_settings(settings, **overrides) as producer:
        began = time.perf_counter()
        for start in range(0, len(payloads), CHUNK):
            chunk = payloads[start : start + CHUNK]
            await asyncio.gather(*(producer.publish_bytes(Topic.PREDICTIONS, v, key=k) for v, k in chunk))
        return len(payloads) / (time.perf_counter() - began)


async def produce_and_consume(settings: StackSettings, messages: int) -> tuple[float, float, float]:
    """(produced/s as cvloop sends, produced/s in batches of up to 16 KB, consumed/s of both)."""
    images = digit_images()
    keys = [uuid4() for _ in range(12)]
    events = [prediction_of(keys[i % len(keys)], images[i % len(images)], i % 10) for i in range(messages)]
    payloads = [(e.to_bytes(), e.key) for e in events]
    produced = await produced_per_s(settings, payloads)
    # The broker's own rate, without cvloop's one record per batch on tansu.
    batched = await produced_per_s(settings, payloads, **BATCHED)
    consumer = await started_consumer(settings, f"bench-{uuid4()}", str(Topic.PREDICTIONS))
    try:
        seen, began = 0, time.perf_counter()
        while seen < 2 * messages:
            batches = await consumer.getmany(timeout_ms=500, max_records=CHUNK)
            seen += sum(len(records) for records in batches.values())
        consumed = seen / (time.perf_counter() - began)
    finally:
        await consumer.stop()
    return produced, batched, consumed


def broker_alone(broker: Broker, messages: int) -> BrokerFigures:
    with started(broker, ["kafka"]) as (settings, start_s):
        [kafka] = stack.components(settings, ["kafka"])
        pid = _pid(kafka)
        idle = rss_mib(pid)
        produced, batched, consumed = asyncio.run(produce_and_consume(settings, messages))
        return BrokerFigures(start_s, idle, produced, batched, consumed, rss_mib(pid))


def whole_stack(broker: Broker) -> StackFigures:
    with started(broker, STACK) as (settings, start_s):
        return StackFigures(start_s, sum(group_rss_mib(_pid(c)) for c in stack.components(settings, STACK)))


async def _deployments(settings: StackSettings) -> list[Deployment]:
    """Deployments with a ready reference, one at least on every partition of `predictions`."""
    pool = await open_pool(settings.database_url)
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket()
    rng = np.random.default_rng(0)
    partitions = list(range(TOPICS[Topic.PREDICTIONS].partitions))
    found: list[Deployment] = []
    try:
        covered: set[int] = set()
        while covered != set(partitions):
            d = await classification_deployment(pool)
            await ready_reference(pool, store, d, 2000, rng)
            found.append(d)
            covered.add(keyed_partitioner(str(d.deployment_id).encode(), partitions, partitions))
    finally:
        await pool.close()
    return found


async def _scored_per_s(settings: StackSettings, targets: list[UUID], count: int) -> tuple[float, float]:
    """(scored/s from the first send to the last score, sent/s) for `count` predictions over targets."""
    images = digit_images()
    events = [prediction_of(targets[i % len(targets)], images[i % len(images)], i % 10) for i in range(count)]
    pool = await open_pool(settings.database_url)

    async def scored() -> int:
        return sum([await prediction_scores.count_scores(pool, t) for t in targets])

    try:
        before = await scored()
        # Sent in batches (BATCHED), or one record per batch would bound the rate (part 1).
        async with EventProducer.from_settings(settings, **BATCHED) as producer:
            began = time.perf_counter()
            for start in range(0, count, CHUNK):
                await asyncio.gather(
                    *(producer.publish(Topic.PREDICTIONS, e) for e in events[start : start + CHUNK])
                )
            sent = count / (time.perf_counter() - began)
        while await scored() < before + count:  # noqa: ASYNC110 (Postgres is polled: no event to wait on)
            await asyncio.sleep(0.05)
        return count / (time.perf_counter() - began), sent
    finally:
        await pool.close()


def scoring_workers(predictions: int) -> dict[int, tuple[float, float]]:
    """Scored/s and sent/s with one and with two scoring workers on tansu, each on deployments of its own
    (the workers started, and the group settled, before the predictions are sent)."""
    names = ["postgres", "kafka", "s3"]
    rates: dict[int, tuple[float, float]] = {}
    with started(Broker.TANSU, names) as (settings, _):
        on_tansu = settings.model_copy(update={"scoring_drift_interval_s": 3600.0})  # as bench/scoring.py
        for workers in (1, 2):
            targets = [d.deployment_id for d in asyncio.run(_deployments(on_tansu))]
            with replicas(on_tansu, "scoring", workers):
                asyncio.run(_scored_per_s(on_tansu, targets, len(targets)))  # every worker assigned and warm
                rates[workers] = asyncio.run(_scored_per_s(on_tansu, targets, predictions))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--predictions", type=int, default=6_000)
    args = parser.parse_args()

    alone = {broker: broker_alone(broker, args.messages) for broker in BROKERS}
    stacks = {broker: whole_stack(broker) for broker in BROKERS}
    mock, tansu = alone[Broker.MOCK], alone[Broker.TANSU]
    print(f"\n| the broker alone ({args.messages:,} messages) | mock | tansu | tansu / mock |")
    print("| --- | --- | --- | --- |")
    for label, field in (
        ("start to healthy, s", "start_s"),
        ("RSS idle, MiB", "idle_rss_mib"),
        ("produced messages/s, as cvloop sends (acks=all, gzip)", "produced_per_s"),
        ("produced messages/s, batches up to 16 KB (acks=all, gzip)", "batched_per_s"),
        ("consumed messages/s", "consumed_per_s"),
        ("RSS after the run, MiB", "loaded_rss_mib"),
    ):
        a, b = getattr(mock, field), getattr(tansu, field)
        print(f"| {label} | {a:,.1f} | {b:,.1f} | {b / a:.2f} |")
    smock, stansu = stacks[Broker.MOCK], stacks[Broker.TANSU]
    print(f"\n| the stack without Triton ({', '.join(STACK)}) | mock | tansu | tansu / mock |")
    print("| --- | --- | --- | --- |")
    for label, a, b in (
        ("start to healthy, s", smock.start_s, stansu.start_s),
        ("RSS of its processes, MiB", smock.rss_mib, stansu.rss_mib),
    ):
        print(f"| {label} | {a:,.1f} | {b:,.1f} | {b / a:.2f} |")

    rates = scoring_workers(args.predictions)
    print(f"\nscoring on tansu, {args.predictions:,} predictions:")
    for workers, (scored, sent) in rates.items():
        print(f"  {workers} worker(s): {scored:,.0f} scored/s (sent at {sent:,.0f}/s)")
    print(f"  two workers / one: {rates[2][0] / rates[1][0]:.2f}x")


if __name__ == "__main__":
    main()
