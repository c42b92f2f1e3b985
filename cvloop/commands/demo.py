"""`cvloop demo send`: images of the generated detection world sent to a served deployment, as a camera in
production would send them, so a newcomer can drive the detection loop from the review page."""

from __future__ import annotations

import click

from cvloop.demo.detection_world import DRIFTED, TRAINING, scenes
from cvloop.demo.digits import png
from cvloop.sdk import Client

from .sdk import progress_bar, with_client

CAMERAS = {TRAINING.camera: TRAINING, DRIFTED.camera: DRIFTED}


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
        for scene in scenes(CAMERAS[camera], count, seed, held_out=True):
            answer = target.predict(png(scene.pixels), tags=[camera])
            found += len(answer.prediction.classes)
            present += len(scene.truth.classes)
            bar.update(1)
    click.echo(f"sent {count} {camera} scenes holding {present} digits; the champion answered {found} boxes")
