"""The retraining loop's turnaround, on a local stack of its own (Postgres, the Kafka-protocol mock broker,
SeaweedFS S3, tritonserver, and ingest, api, serving, pipeline and job runner as `cvloop up` runs them):

- the loop: wall time from the N-th submission (threshold N) to serving's first answer with the new
  version as shadow (TrainingRequested, experiment and job, the runner staging in, the reference trainer,
  staging out, TrainingFinished, export, deploy_shadow, serving loading it into Triton);
- the baseline, measured in the same run: the trainer's own run time (the job run's start to finish, as
  the runner records it).

Prints both and their ratio (the platform's overhead around training), and the trainer's accuracy on the
held-out `test` dataset version before and after.

Usage: .venv/bin/python -m bench.retraining_loop [--threshold 20] [--test-images 200] [--epochs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.local_stack import local_stack
from cvloop.demo.loop import SERVICES, digit_split, served, set_up
from services.common.db.repositories import experiments
from services.common.settings import Settings

INFRASTRUCTURE = ["postgres", "kafka", "s3", "triton"]
WAIT_S = 600.0


async def run(settings: Settings, threshold: int, test_images: int, epochs: int) -> None:
    training, held_out = digit_split()
    async with set_up(
        settings, threshold=threshold, test_images=test_images, parameters={"epochs": epochs}
    ) as loop:
        await served(loop, training[0], WAIT_S)
        submitted_at = await loop.review_and_submit(held_out[:threshold], WAIT_S)
        started = time.monotonic()
        new_version = await loop.shadow_version(WAIT_S)
        deployed_s = time.monotonic() - started
        shadow_at = await loop.first_shadow_answer(new_version, training[1:400], WAIT_S)
        run = await loop.training_run()
        experiment = await experiments.requested_experiment(loop.db, loop.request_id)
        assert experiment is not None  # the pipeline made it before the version it became
        accuracy = await loop.trainer_metrics(experiment.id)
    loop_s = (shadow_at - submitted_at).total_seconds()
    trainer_s = (run["finished_at"] - run["started_at"]).total_seconds()
    print(f"threshold N = {threshold}, test images = {test_images}, epochs = {epochs}")
    print(f"N-th submission -> new version serving as shadow: {loop_s:8.2f} s")
    print(f"  of which until the deployment named it shadow:  {deployed_s:8.2f} s (approx., polled)")
    print(f"trainer's own run (job run start -> finish):       {trainer_s:8.2f} s")
    print(f"ratio loop / trainer:                              {loop_s / trainer_s:8.2f}x")
    print(
        f"trainer accuracy on test: before {accuracy['accuracy_before']:.4f}, "
        f"after {accuracy['accuracy_after']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=int, default=20)
    parser.add_argument("--test-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    components = INFRASTRUCTURE + SERVICES
    fast = {"pipeline_outbox_retry_s": 0.5, "serving_reconcile_interval_s": 0.5}
    with local_stack("loop", components, **fast) as settings:
        asyncio.run(run(settings, args.threshold, args.test_images, args.epochs))


if __name__ == "__main__":
    main()
