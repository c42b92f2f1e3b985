"""`cvloop demo send`: images of the generated detection world sent to a served deployment, as a camera in
production would send them, so a newcomer can drive the detection loop from the review page."""

from __future__ import annotations

import time

import click

from cvloop.demo.detection_world import DRIFTED, TRAINING, scenes
from cvloop.demo.digits import png
from cvloop.sdk import Client, Deployment, NotFound
from cvloop.sdk.deployments import ServedPrediction

from .sdk import progress_bar, with_client

CAMERAS = {TRAINING.camera: TRAINING, DRIFTED.camera: DRIFTED}
SERVING_LEARNS_S = 30.0  # serving hears of a deployment `cvloop up` just seeded within seconds


def _first(target: Deployment, image: bytes, tags: list[str]) -> ServedPrediction:
    """The first prediction, asked again while serving answers that it has not heard of the deployment
    yet (right after `cvloop up`)."""
    deadline = time.monotonic() + SERVING_LEARNS_S
    while True:
        try:
            return target.predict(image, tags=tags)
        except NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


@click.group()
def demo() -> None:
    """The demo deployments' data."""


@demo.command("send")
@click.argument("deployment", default="digits-detection")
@click.option(
    "--camera",
    type=click.Choice(sorted(CAMERAS)),
    default=DRIFTED.camera,
    show_default=True,
    help=f"{TRAINING.camera}: what the base detector learnt from; {DRIFTED.camera}: the drifted stream.",
)
@click.option("--count", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--seed", type=int, default=100, show_default=True, help="Another seed, other scenes.")
@with_client
def demo_send(client: Client, deployment: str, camera: str, count: int, seed: int) -> None:
    """Send COUNT generated scenes seen by CAMERA to DEPLOYMENT's predict endpoint; prints what the
    champion found in each (review them on the review page)."""
    target = client.get_deployment(deployment)
    found = present = 0
    with progress_bar(count, f"sending to {deployment}") as bar:
        for n, scene in enumerate(scenes(CAMERAS[camera], count, seed, held_out=True)):
            image = png(scene.pixels)
            answer = _first(target, image, [camera]) if n == 0 else target.predict(image, tags=[camera])
            found += len(answer.prediction.classes)
            present += len(scene.truth.classes)
            bar.update(1)
    click.echo(f"sent {count} {camera} scenes holding {present} digits; the champion answered {found} boxes")
