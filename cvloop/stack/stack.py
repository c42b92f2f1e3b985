"""The local stack as a whole: components in start order, brought up, down, and checked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from .component import Component, Health
from .demo import DemoDeployment, DetectionDemo
from .drain import describe, drain
from .kafka import KafkaBroker
from .postgres import Postgres
from .s3 import S3Server
from .service import Api, Ingest, JobRunner, Pipeline, PythonService, Scoring, Serving
from .settings import StackSettings
from .triton import TritonServer

COMPONENT_TYPES: tuple[type[Component], ...] = (
    Postgres,
    KafkaBroker,
    S3Server,
    TritonServer,
    Ingest,
    Api,
    Scoring,
    Pipeline,
    JobRunner,
    Serving,
    DemoDeployment,  # seeded last: they need the services up
    DetectionDemo,
)


def components(settings: StackSettings, names: list[str] | None = None) -> list[Component]:
    chosen = [cls(settings) for cls in COMPONENT_TYPES]
    if names:
        unknown = set(names) - {c.name for c in chosen}
        if unknown:
            raise ValueError(f"unknown component(s) {sorted(unknown)}; known: {[c.name for c in chosen]}")
        chosen = [c for c in chosen if c.name in names]
    return chosen


def up(settings: StackSettings, names: list[str] | None = None) -> Iterator[Health]:
    """Start each component (skipping external and running ones) and yield its health."""
    for component in components(settings, names):
        component.start()
        yield component.health()


@dataclass(frozen=True)
class Stopped:
    name: str
    state: str  # "stopped", "drained" or "not drained"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state != "not drained"


def down(settings: StackSettings, names: list[str] | None = None) -> Iterator[Stopped]:
    """Stop the chosen components in reverse start order. When that stops the local broker, which
    forgets its messages, the services that only produce stop first, then the broker is drained: every
    running consumer group reads what was produced before its service stops."""
    chosen = list(reversed(components(settings, names)))
    if any(isinstance(c, KafkaBroker) and c.running for c in chosen):
        producers = [c for c in chosen if isinstance(c, PythonService) and not c.consumer_groups]
        for component in producers:
            component.stop()
            yield Stopped(component.name, "stopped")
        chosen = [c for c in chosen if c not in producers]
        yield _drain(settings)
    for component in chosen:
        component.stop()
        yield Stopped(component.name, "stopped")


def _drain(settings: StackSettings) -> Stopped:
    running = [
        group
        for component in components(settings)
        if isinstance(component, PythonService) and component.running
        for group in component.consumer_groups
    ]
    try:
        unread, waited_s = asyncio.run(drain(settings, running, settings.drain_timeout_s))
    except (KafkaError, OSError, RuntimeError) as exc:  # a wedged broker must not keep the stack up
        return Stopped(KafkaBroker.name, "not drained", f"cannot read the consumer groups' lag: {exc!r}")
    if unread:
        return Stopped(
            KafkaBroker.name,
            "not drained",
            f"after {waited_s:.0f} s: {describe(unread)}; these messages are lost when the broker stops "
            "(a stopped service's group cannot read them; a running one may need a longer "
            "CVLOOP_DRAIN_TIMEOUT_S, see its log)",
        )
    return Stopped(KafkaBroker.name, "drained", f"every consumer group read every message ({waited_s:.1f} s)")


def status(settings: StackSettings) -> list[Health]:
    return [component.health() for component in components(settings)]
