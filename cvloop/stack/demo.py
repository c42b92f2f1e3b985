"""The demo deployments as the last steps of `cvloop up`: seeded into Postgres, the object store and the
`deployments` topic once the services run (see cvloop.demo.seed). They are data, not processes: stopping
one forgets that it was seeded, and its health says whether it was."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.local_stack import LOCAL_HOST

from .component import Component, Health

if TYPE_CHECKING:
    from cvloop.demo.seed import Demo


class DemoDeployment(Component):
    """The digits classifier, served."""

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

    def seed(self) -> Demo:
        from cvloop.demo.seed import seed  # scikit-learn and onnx load only when seeding

        return asyncio.run(seed(self.settings))

    def launch(self) -> None:
        demo = self.seed()
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
        key = self.settings.state_path / DemoDeployment.name / "api-key"
        return Health(self.name, "healthy", self.address, f"API key in {key}")


class DetectionDemo(DemoDeployment):
    """The detection loop: the PyTorch detector served, its continuous training and deploy_shadow set."""

    name = "detection_demo"

    def install(self) -> None:
        """The torch environment the detector trains in (scripts/install_torch.sh) is installed, and the
        base detector trained, when seeding needs them."""

    def seed(self) -> Demo:
        from cvloop.demo.seed import seed_detection  # torch env, scenes, the api client

        return asyncio.run(seed_detection(self.settings))
