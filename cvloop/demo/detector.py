"""The demo detector: the PyTorch reference trainer (cvloop.trainers.detection) run as the job runner runs it
(the torch environment's Python in a job workspace), on clean scenes of the generated detection world. The
base version is trained once and cached in the tools folder under a key of what decides it (the trainer,
the world, the parameters), so `cvloop up`, the tests and the benches share one build; training is
deterministic for a seed, so a rebuild gives the same figures."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvloop.demo.detection_world import CANVAS, DRIFTED, TRAINING, Condition, Scene, scenes
from cvloop.demo.digits import LABELS, TrainedModel, png
from cvloop.demo.loop import Champion, Example
from cvloop.demo.trainer_workspace import Asset, build_workspace
from cvloop.stack.scratch import tools_dir
from cvloop.trainers.detection_data import REHEARSAL_ALIAS, detector_io, detector_training
from schemas.job_workspace import TEST_ALIAS
from schemas.model_io import ModelIO
from schemas.model_version import CHECKPOINT_FILE, MODEL_FILE
from schemas.predictions import DetectionType

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TRAINER = "cvloop.trainers.detection"
BASE_SCENES = 600
BASE_SEED = 1  # of the clean scenes the base learns from
BASE_PARAMETERS: dict[str, Any] = {"epochs": 15, "learning_rate": 0.003, "seed": 1}
# Continuous training's: a few seconds of fine-tuning on a few dozen reviews (docs/benchmarks.md).
FINE_TUNING: dict[str, Any] = {"epochs": 40, "learning_rate": 0.003, "seed": 1}
MODEL = "digits-detector"
# Answers under it are not shown: a drifted scene's faint digits then need a reviewer's boxes.
CONFIDENCE_THRESHOLD = 0.3
# What the base's decisions hang on: a change to any of them trains a new base.
_SOURCES = (
    "cvloop/trainers/detection.py",
    "cvloop/trainers/detection_data.py",
    "cvloop/demo/detection_world.py",
    "cvloop/demo/digits.py",
    "scripts/torch-requirements.txt",
)


def torch_python() -> Path:
    """The torch environment's interpreter (scripts/install_torch.sh, run first when it is missing)."""
    subprocess.run([str(REPO_ROOT / "scripts" / "install_torch.sh")], check=True)
    return tools_dir().resolve() / "torch-env" / "bin" / "python"


@dataclass(frozen=True)
class TrainedDetector:
    """An exported detector: model.onnx, the checkpoint it fine-tunes from, and how serving calls it."""

    onnx: bytes
    checkpoint: bytes
    labels: list[str]

    @property
    def io(self) -> ModelIO:
        return detector_io(CANVAS)


def run_trainer(
    root: Path, data: Mapping[str, Sequence[Scene]], parameters: dict[str, Any], checkpoint: bytes | None
) -> Path:
    """One run of the trainer on the dataset aliases `data` in a fresh workspace in `root`, starting from
    `checkpoint` when given; its outputs/ folder. Raises CalledProcessError (with the log) on a failed run."""
    base = TrainedModel(b"", detector_io(CANVAS), LABELS, float("nan"))
    workspace = build_workspace(
        root,
        base,
        parameters,
        {alias: [Asset(s.pixels, s.truth) for s in found] for alias, found in data.items()},
        DetectionType.DETECTION,
        checkpoint,
    )
    env = os.environ | {"CVLOOP_JOB_DIR": str(workspace), "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([str(torch_python()), "-m", TRAINER], env=env, check=True, capture_output=True)
    return workspace / "outputs"


def _key() -> str:
    digest = hashlib.sha256(json.dumps([BASE_SCENES, BASE_SEED, BASE_PARAMETERS]).encode())
    for source in _SOURCES:
        digest.update((REPO_ROOT / source).read_bytes())
    return digest.hexdigest()[:16]


def base_detector() -> TrainedDetector:
    """The base detector, trained on the first run (about a minute on two cores) and cached: two
    processes building at once wait for each other (a lock), a finished build appears whole (a rename)."""
    folder = tools_dir().resolve() / "models" / f"detector-{_key()}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / CHECKPOINT_FILE).exists():
            print(f"[detector] training the demo's base detector once, into {folder}", file=sys.stderr)
            work = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
            try:
                clean = list(scenes(TRAINING, BASE_SCENES, BASE_SEED))
                outputs = run_trainer(work / "job", {"train": clean}, BASE_PARAMETERS, None)
                outputs.rename(work / "built")
                (work / "built").rename(folder)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return TrainedDetector(
        (folder / MODEL_FILE).read_bytes(), (folder / CHECKPOINT_FILE).read_bytes(), LABELS
    )


def detection_champion() -> Champion:
    """The base detector as a loop's champion: model.onnx and its checkpoint, trained by the trainer."""
    base = base_detector()
    return Champion(
        MODEL,
        base,
        DetectionType.DETECTION,
        base.labels,
        files={CHECKPOINT_FILE: base.checkpoint},
        training=detector_training(),
        confidence_threshold=CONFIDENCE_THRESHOLD,
    )


def scene_examples(condition: Condition, count: int, seed: int, held_out: bool = False) -> list[Example]:
    """Scenes as serving receives them (PNG) with their truth (every digit's box and label)."""
    return [Example(png(s.pixels), s.truth) for s in scenes(condition, count, seed, held_out)]


def detection_datasets(rehearsal: int = 150, test: int = 100) -> dict[str, list[Example]]:
    """A loop's dataset versions: clean camera-a scenes (`rehearsal`: old scenes fine-tuning keeps seeing,
    also the training data scores compare with) and
    held-out drifted camera-b scenes (`test`, what the trainer's metrics report)."""
    return {
        REHEARSAL_ALIAS: scene_examples(TRAINING, rehearsal, seed=2),
        TEST_ALIAS: scene_examples(DRIFTED, test, seed=3, held_out=True),
    }
