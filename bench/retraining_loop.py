"""The retraining loop's turnaround, on a local stack of its own (Postgres, the Kafka-protocol broker,
SeaweedFS S3, tritonserver, and ingest, api, serving, pipeline and job runner as `cvloop up` runs them),
for the digits classifier (`--task classification`, the numpy reference trainer) or the PyTorch detector
(`--task detection`, reviewed drifted scenes of the generated detection world):

- the loop: wall time from the N-th submission (threshold N) to serving's first answer with the new
  version as shadow (TrainingRequested, experiment and job, the runner staging in, the trainer, staging
  out, TrainingFinished, export, deploy_shadow, serving loading it into Triton);
- the baseline, measured in the same run: the trainer's own run time (the job run's start to finish, as
  the runner records it).

Prints both and their ratio (the platform's overhead around training), and the trainer's figures on the
held-out `test` dataset version before and after.

Usage: .venv/bin/python -m bench.retraining_loop [--task classification] [--threshold 20] [--test-images 200]
    [--epochs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench.local_stack import local_stack
from cvloop.demo.detection_world import DRIFTED
from cvloop.demo.detector import (
    FINE_TUNING,
    detection_champion,
    detection_datasets,
    scene_examples,
)
from cvloop.demo.digits import digit_png
from cvloop.demo.loop import (
    SERVICES,
    Champion,
    Example,
    digit_examples,
    digit_split,
    digits_champion,
    served,
    set_up,
)
from cvloop.trainers.detection_data import REHEARSAL_ALIAS
from services.common.db.repositories import experiments
from services.common.settings import Settings

INFRASTRUCTURE = ["postgres", "kafka", "s3", "triton"]
WAIT_S = 600.0


@dataclass(frozen=True)
class Task:
    champion: Champion
    datasets: dict[str, list[Example]]
    training_data: str | None
    reviews: list[Example]  # the N submitted
    probes: list[bytes]  # sent while waiting for the shadow's first answer
    parameters: dict[str, Any]


def classification(threshold: int, test_images: int, epochs: int) -> Task:
    training, held_out = digit_split()
    return Task(
        digits_champion(),
        {"test": digit_examples(held_out[threshold : threshold + test_images])},
        None,
        digit_examples(held_out[:threshold]),
        [digit_png(i) for i in training[:400]],
        {"epochs": epochs},
    )


def detection(threshold: int, test_images: int, epochs: int) -> Task:
    reviews = scene_examples(DRIFTED, threshold, seed=11)
    return Task(
        detection_champion(),
        detection_datasets(test=test_images),
        REHEARSAL_ALIAS,
        reviews,
        [e.image for e in reviews],
        FINE_TUNING | {"epochs": epochs},
    )


async def run(settings: Settings, task: Task) -> None:
    threshold = len(task.reviews)
    async with set_up(
        settings,
        task.champion,
        threshold=threshold,
        parameters=task.parameters,
        datasets=task.datasets,
        training_data=task.training_data,
    ) as loop:
        await served(loop, task.probes[0], WAIT_S)
        submitted_at = await loop.review_and_submit(task.reviews, WAIT_S)
        started = time.monotonic()
        new_version = await loop.shadow_version(WAIT_S)
        deployed_s = time.monotonic() - started
        shadow_at = await loop.first_shadow_answer(new_version, task.probes, WAIT_S)
        run = await loop.training_run()
        experiment = await experiments.requested_experiment(loop.db, loop.request_id)
        assert experiment is not None  # the pipeline made it before the version it became
        metrics = await loop.trainer_metrics(experiment.id)
    loop_s = (shadow_at - submitted_at).total_seconds()
    trainer_s = (run["finished_at"] - run["started_at"]).total_seconds()
    print(f"threshold N = {threshold}, test images = {len(task.datasets['test'])}, {task.parameters}")
    print(f"N-th submission -> new version serving as shadow: {loop_s:8.2f} s")
    print(f"  of which until the deployment named it shadow:  {deployed_s:8.2f} s (approx., polled)")
    print(f"trainer's own run (job run start -> finish):       {trainer_s:8.2f} s")
    print(f"ratio loop / trainer:                              {loop_s / trainer_s:8.2f}x")
    for name in sorted(k.removesuffix("_before") for k in metrics if k.endswith("_before")):
        before, after = metrics[f"{name}_before"], metrics[f"{name}_after"]
        print(f"trainer's {name} on test: before {before:.4f}, after {after:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["classification", "detection"], default="classification")
    parser.add_argument("--threshold", type=int, default=20)
    parser.add_argument("--test-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=None, help="default: 20, or the detector's 10")
    args = parser.parse_args()
    build = classification if args.task == "classification" else detection
    epochs = args.epochs or (20 if args.task == "classification" else FINE_TUNING["epochs"])
    task = build(args.threshold, args.test_images, epochs)
    components = INFRASTRUCTURE + SERVICES
    fast = {"pipeline_outbox_retry_s": 0.5, "serving_reconcile_interval_s": 0.5}
    with local_stack("loop", components, **fast) as settings:
        asyncio.run(run(settings, task))


if __name__ == "__main__":
    main()
