"""The PyTorch detection trainer on the generated detection world (cvloop/demo/detection_world.py): what one
fine-tune on reviewed drifted images buys, against the model before it and a model trained from scratch on
the same feedback alone. The first part of the detection loop (issue 18): the trainer runs as the job
runner runs it (the torch environment's Python, `-m cvloop.trainers.detection`, in a workspace folder),
not yet triggered by reviews through the stack.

1. base: trained from scratch on clean training scenes (camera-a);
2. fine-tuned: the base's checkpoint fine-tuned on reviewed drifted scenes (camera-b);
3. rehearsal: the same fine-tune with the base's clean training scenes as the `rehearsal` alias (each
   epoch samples `rehearsal_ratio` x the feedback's count of them, against forgetting);
4. scratch: trained from nothing on the same drifted feedback alone.

Each exported model.onnx is scored through onnxruntime (what serving runs) with COCO AP@[.5:.95] and AP50
(services/common/domain/coco.py) on held-out drifted scenes and on held-out clean ones (what fine-tuning
costs on the old data); the figures are ratios against the base, run in the same process.

    .venv/bin/python -m bench.detection_loop [--clean 600] [--feedback 40] [--epochs 15] [--ft-epochs E]
        [--ft-lr LR] [--rehearsal-ratio R]

Fine-tuning and scratch use the trainer's defaults (DetectionParameters) unless given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from cvloop.demo.detection_world import CANVAS, DRIFTED, TRAINING, Condition, Scene, scenes
from cvloop.demo.detector import run_trainer
from cvloop.demo.digits import LABELS
from cvloop.trainers.detection_data import REHEARSAL_ALIAS, DetectionParameters
from schemas.model_version import CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE
from schemas.predictions import DetectionPrediction
from services.common.domain.coco import detection_quality

HELD_OUT = 200  # scenes per held-out set


def quality(onnx: bytes, held_out: list[Scene]) -> tuple[float, float]:
    """AP@[.5:.95] and AP50 of the exported model on `held_out`, every answer kept (as COCO does)."""
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    pairs = []
    for scene in held_out:
        image = (scene.pixels.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
        (rows,) = session.run(None, {"images": image})[0]
        rows = rows[rows[:, 4] > 0]
        answer = DetectionPrediction(
            classes=[LABELS[int(c)] for c in rows[:, 5]],
            scores=rows[:, 4].clip(0, 1).tolist(),
            boxes=[tuple(float(v) for v in box) for box in np.clip(rows[:, :4], 0, CANVAS)],
        )
        pairs.append((scene.truth, answer))
    found = detection_quality(pairs)
    return found.ap, found.ap50


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clean", type=int, default=600, help="clean training scenes of the base")
    parser.add_argument("--feedback", type=int, default=40, help="reviewed drifted scenes")
    parser.add_argument("--epochs", type=int, default=15, help="the base's epochs")
    defaults = DetectionParameters()
    parser.add_argument(
        "--ft-epochs", type=int, default=defaults.epochs, help="fine-tuning's and scratch's epochs"
    )
    parser.add_argument(
        "--ft-lr",
        type=float,
        default=defaults.learning_rate,
        help="fine-tuning's and scratch's learning rate",
    )
    parser.add_argument("--rehearsal-ratio", type=float, default=defaults.rehearsal_ratio)
    args = parser.parse_args()

    def world(condition: Condition, count: int, seed: int, held_out: bool = False) -> list[Scene]:
        return list(scenes(condition, count, seed, held_out))

    held_drifted, held_clean = world(DRIFTED, HELD_OUT, 101, True), world(TRAINING, HELD_OUT, 102, True)
    clean, feedback = world(TRAINING, args.clean, 1), world(DRIFTED, args.feedback, 11)
    tuning = {"epochs": args.ft_epochs, "learning_rate": args.ft_lr, "seed": 1}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        runs = {  # name: aliases, parameters, the run whose checkpoint it starts from
            "base": ({"train": clean}, {"epochs": args.epochs, "learning_rate": 0.003, "seed": 1}, None),
            "fine-tuned": ({"feedback": feedback}, tuning, "base"),
            "rehearsal": (
                {"feedback": feedback, REHEARSAL_ALIAS: clean},
                tuning | {"rehearsal_ratio": args.rehearsal_ratio},
                "base",
            ),
            "scratch": ({"feedback": feedback}, tuning, None),
        }
        outputs: dict[str, Path] = {}
        for name, (data, parameters, start) in runs.items():
            started = time.perf_counter()
            checkpoint = (outputs[start] / CHECKPOINT_FILE).read_bytes() if start else None
            outputs[name] = run_trainer(Path(folder) / name, data, parameters, checkpoint)
            seconds = time.perf_counter() - started
            onnx = (outputs[name] / MODEL_FILE).read_bytes()
            metrics = json.loads((outputs[name] / METRICS_FILE).read_text())
            drifted, clean_found = quality(onnx, held_drifted), quality(onnx, held_clean)
            results[name] = {
                "drifted_ap": drifted[0],
                "clean_ap": clean_found[0],
                "run_s": seconds,
            }
            sizes = " + ".join(f"{len(v)} {k}" for k, v in data.items())
            print(
                f"{name:>10}: {sizes} scenes, {parameters}, run {seconds:.1f} s (trainer "
                f"{metrics['train_seconds']:.1f} s); drifted AP {drifted[0]:.3f} AP50 {drifted[1]:.3f}; "
                f"clean AP {clean_found[0]:.3f} AP50 {clean_found[1]:.3f}",
                flush=True,
            )
    base = results["base"]
    for name in ("fine-tuned", "rehearsal", "scratch"):
        found = results[name]
        print(
            f"{name} / base: drifted AP {found['drifted_ap'] / max(base['drifted_ap'], 1e-9):.2f}x, "
            f"clean AP {found['clean_ap'] / max(base['clean_ap'], 1e-9):.2f}x, "
            f"run time {found['run_s'] / base['run_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
