"""Real detectors and segmenters for the tests, built once by tests/models_build.py in the torch
environment (scripts/install_torch.sh, installed here when missing) and cached in the tools folder under
a key of what decides them: the torch environment's requirements, the build script and the images. Two
sessions building at once wait for each other (a lock); a finished build appears whole (a rename)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from cvloop.stack.scratch import tools_dir
from schemas.model_io import ModelIO
from schemas.predictions import DetectionType
from schemas.vocabulary import OutputFormat, Resize
from tests.scenes import scene

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "tests" / "models_build.py"
REQUIREMENTS = REPO_ROOT / "scripts" / "torch-requirements.txt"
IMAGES = 3  # per image size
# Width, height: torchvision's (its export's size), ultralytics' (letterboxed into 640 x 640).
IMAGE_SIZES = ((320, 320), (640, 480))


@dataclass(frozen=True)
class RealModel:
    """One exported model, the io docs/models.md registers it with, and the framework's own answers."""

    name: str
    folder: Path
    output_format: OutputFormat
    detection_type: DetectionType
    side: int  # the input's
    image_size: tuple[int, int]  # the images': width, height
    labels: list[str]
    threshold: float  # the deployment's: chosen in a gap between the framework's scores
    versions: dict[str, str]

    @cached_property
    def onnx(self) -> bytes:
        return (self.folder / f"{self.name}.onnx").read_bytes()

    @property
    def io(self) -> ModelIO:
        if self.output_format == OutputFormat.TORCHVISION:
            # By name: the graph's order is the model's dict's (SSD's: boxes, scores, labels).
            roles = ["boxes", "labels", "scores"]
            if self.detection_type == DetectionType.SEGMENTATION:
                roles.append("masks")
            return ModelIO(
                width=self.side,
                height=self.side,
                output_format=self.output_format,
                outputs={role: role for role in roles},
            )
        return ModelIO(
            width=self.side, height=self.side, resize=Resize.LETTERBOX, output_format=self.output_format
        )

    def images(self) -> list[bytes]:
        width, height = self.image_size
        return [(self.folder / "images" / f"{width}x{height}-{i}.png").read_bytes() for i in range(IMAGES)]

    def answer(self, image: int) -> dict[str, np.ndarray]:
        """The framework's answer on image `image`: boxes, scores, classes (and masks) at or over the
        threshold."""
        with np.load(self.folder / f"{self.name}.npz") as saved:
            return {key.rsplit("_", 1)[0]: saved[key] for key in saved.files if key.endswith(f"_{image}")}


def _images() -> dict[str, bytes]:
    return {f"{w}x{h}-{i}.png": scene(100 + i, w, h) for w, h in IMAGE_SIZES for i in range(IMAGES)}


def _key(images: dict[str, bytes]) -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + BUILD_SCRIPT.read_bytes())
    for name, data in sorted(images.items()):
        digest.update(name.encode() + data)
    return digest.hexdigest()[:16]


def _build(python: Path, target: Path, images: dict[str, bytes]) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        (work / "images").mkdir()
        for name, data in images.items():
            (work / "images" / name).write_bytes(data)
        with tempfile.TemporaryDirectory() as settings:
            # Ultralytics must neither install nor report anything: offline, its settings kept apart.
            environment = os.environ | {
                "YOLO_OFFLINE": "1",
                "YOLO_AUTOINSTALL": "false",
                "YOLO_CONFIG_DIR": settings,
            }
            subprocess.run(
                [str(python), str(BUILD_SCRIPT), str(work), str(work / "images")], check=True, env=environment
            )
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def real_models() -> dict[str, RealModel]:
    """The built models by name, building them first when the cache lacks them."""
    subprocess.run([str(REPO_ROOT / "scripts" / "install_torch.sh")], check=True)
    tools = tools_dir().resolve()
    images = _images()
    folder = tools / "models" / _key(images)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "manifest.json").exists():
            _build(tools / "torch-env" / "bin" / "python", folder, images)
    manifest = json.loads((folder / "manifest.json").read_text())
    return {
        name: RealModel(
            name=name,
            folder=folder,
            output_format=OutputFormat(entry["output_format"]),
            detection_type=DetectionType(entry["detection_type"]),
            side=entry["side"],
            image_size=tuple(entry["image"]),
            labels=entry["labels"],
            threshold=entry["threshold"],
            versions=entry["versions"],
        )
        for name, entry in manifest.items()
    }
