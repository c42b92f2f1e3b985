"""The demo deployment as the last step of `cvloop up`: seeded into Postgres, the object store and the
`deployments` topic once the services run (see cvloop.demo.seed). It is data, not a process: stopping
it does nothing, and its health says whether it was seeded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from schemas.local_stack import LOCAL_HOST

from .component import Component, Health


class DemoDeployment(Component):
    name = "demo"

    @property
    def external(self) -> bool:
        return False

    @property
    def _deployment_file(self) -> Path:
        return self.workdir / "deployment"

    @property
    def address(self) -> str:
        deployment = self._deployment_file.read_text().strip() if self._deployment_file.exists() else "<id>"
        return f"http://{LOCAL_HOST}:{self.settings.serving_port}/v1/deployments/{deployment}/predict"

    def install(self) -> None:
        """Nothing to install: the models train in seconds when seeding."""

    def launch(self) -> None:
        from cvloop.demo.seed import seed  # scikit-learn and onnx load only when seeding

        demo = asyncio.run(seed(self.settings))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._deployment_file.write_text(f"{demo.deployment_id}\n")

    def probe(self) -> bool:
        return self._deployment_file.exists()

    def start(self) -> None:
        self.launch()

    def stop(self) -> None:
        """Forget that it was seeded (the next `up` seeds again, idempotently); its rows and objects
        stay with the data of the other components."""
        self._deployment_file.unlink(missing_ok=True)

    def health(self) -> Health:
        if not self.probe():
            return Health(self.name, "stopped", self.address)
        return Health(self.name, "healthy", self.address, f"API key in {self.workdir / 'api-key'}")
