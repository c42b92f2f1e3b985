"""The local stack as a whole: components in start order, brought up, down, and checked."""

from __future__ import annotations

from collections.abc import Iterator

from .component import Component, Health
from .demo import DemoDeployment
from .kafka import KafkaBroker
from .postgres import Postgres
from .s3 import S3Server
from .service import Api, Ingest, JobRunner, Pipeline, Scoring, Serving
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
    DemoDeployment,  # seeded last: it needs the services up
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


def down(settings: StackSettings, names: list[str] | None = None) -> Iterator[str]:
    for component in reversed(components(settings, names)):
        component.stop()
        yield component.name


def status(settings: StackSettings) -> list[Health]:
    return [component.health() for component in components(settings)]
