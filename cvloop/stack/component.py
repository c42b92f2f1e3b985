"""What every local-stack component offers to `cvloop up`, `down` and `status`."""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from schemas.local_stack import LOCAL_HOST

from .process import StackError, clear_dead, ensure_ports_free, log_tail, running_pid, terminate, wait_until
from .settings import StackSettings


@dataclass(frozen=True)
class Health:
    name: str
    state: str  # "healthy", "unhealthy", "stopped" or "external"
    address: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("healthy", "external")


class Component(ABC):
    """A server of the local stack, run as one detached process under <state dir>/<name>/."""

    name: str
    start_timeout: float = 30.0
    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    @property
    def workdir(self) -> Path:
        return self.settings.state_path / self.name

    @property
    def external(self) -> bool:
        return self.settings.is_external(self.name)

    @property
    def running(self) -> bool:
        """Started by this stack and alive."""
        return not self.external and running_pid(self.workdir) is not None

    @property
    @abstractmethod
    def address(self) -> str: ...

    @property
    def ports(self) -> list[int]:
        """The loopback ports the server binds, checked bindable before it starts."""
        return []

    @abstractmethod
    def install(self) -> None:
        """Install what the component needs when it is missing; idempotent and quick when done."""

    @abstractmethod
    def launch(self) -> None:
        """Start the server process (through process.spawn into self.workdir)."""

    @abstractmethod
    def probe(self) -> bool:
        """True when the server answers like itself."""

    def start(self) -> None:
        if self.external or running_pid(self.workdir) is not None:
            return
        clear_dead(self.workdir)  # what a crash (kill -9) left behind
        self.install()
        ensure_ports_free(LOCAL_HOST, self.ports, self.name)
        self.launch()
        if not wait_until(self._up_or_dead, self.start_timeout, interval=0.2) or not self.probe():
            tail = log_tail(self.workdir)
            self.stop()
            raise StackError(f"{self.name} did not become healthy; its log ends with:\n{tail}")

    def _up_or_dead(self) -> bool:
        return running_pid(self.workdir) is None or self.probe()

    def stop(self) -> None:
        if not self.external:
            terminate(self.workdir, sig=self.stop_signal)

    def health(self) -> Health:
        if self.external:
            return Health(self.name, "external", self.address)
        if running_pid(self.workdir) is None:
            return Health(self.name, "stopped", self.address)
        try:
            ok = self.probe()
        except Exception as exc:  # a probe that raises is an unhealthy server, not a CLI crash
            return Health(self.name, "unhealthy", self.address, str(exc))
        return Health(self.name, "healthy" if ok else "unhealthy", self.address)
