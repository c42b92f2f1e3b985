"""Replicas of a stream service, as the consumer-group tests (tests/integration/test_consumer_groups.py)
and bench/broker.py start them: each one the process `cvloop up` starts (`python -m services.<name>`), on
a port block and state folder of its own, all on the Postgres, broker and S3 of the settings given, so
they are members of one consumer group."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from .process import is_alive, running_pid, wait_until
from .scratch import free_port_base
from .service import PythonService
from .settings import StackSettings
from .stack import components


@contextmanager
def replicas(settings: StackSettings, name: str, count: int) -> Iterator[list[PythonService]]:
    """`count` healthy replicas of the service `name`, stopped on leaving (a killed one is already gone)."""
    started: list[PythonService] = []
    try:
        for index in range(count):
            own = settings.sharing_servers(
                port_base=free_port_base(), state_dir=settings.state_path / f"{name}-{index}"
            )
            [service] = components(own, [name])
            assert isinstance(service, PythonService)
            service.start()
            started.append(service)
        yield started
    finally:
        for service in started:
            service.stop()


def kill(service: PythonService) -> None:
    """SIGKILL, as a crash: no leave-group, no commit, no flush."""
    pid = running_pid(service.workdir)
    assert pid is not None, f"{service.name} is not running"
    os.killpg(pid, signal.SIGKILL)
    assert wait_until(lambda: not is_alive(pid), 10.0)


async def scrape(service: PythonService) -> str:
    """The replica's Prometheus exposition."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{service.address}/metrics")
    response.raise_for_status()
    return response.text
