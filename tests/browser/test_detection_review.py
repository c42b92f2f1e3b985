"""One detection loop driven from the review page, as a newcomer drives the `digits-detection` demo: the
PyTorch detector (cvloop.demo.detector) serves drifted scenes and misses faint digits; on each prediction's
page the reviewer deletes the champion's boxes and draws the true ones with the mouse, picks each digit's
class, marks it reviewed; the grid submits the reviewed ones; at the threshold the pipeline trains the
detector from its checkpoint, deploys the export as shadow, and the pipeline page promotes it."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from playwright.sync_api import Page, expect

from cvloop.demo.detection_world import DRIFTED
from cvloop.demo.detector import (
    FINE_TUNING,
    detection_champion,
    detection_datasets,
    scene_examples,
)
from cvloop.demo.loop import Example, build
from cvloop.sdk import Client, CvloopError, Deployment
from cvloop.trainers.detection_data import REHEARSAL_ALIAS
from services.common.db.pool import open_pool
from services.common.db.repositories import projects
from services.common.settings import Settings
from tests.sdk_support import eventually

THRESHOLD = 3
TRAINING_S = 300.0


@dataclass(frozen=True)
class DetectionWorld:
    deployment_id: UUID
    feedback_id: UUID
    scenes: list[Example]  # drifted, each predicted once through serving


async def _build(settings: Settings, key: str) -> tuple[UUID, UUID]:
    db = await open_pool(settings.database_url, max_size=2)
    try:
        found = await projects.authenticate(db, key)
        assert found is not None
        champion = await asyncio.to_thread(detection_champion)
        datasets = await asyncio.to_thread(detection_datasets, 40, 20)
        loop = await build(
            settings,
            db,
            found.project_id,
            key,
            champion,
            name="digits-detection",
            threshold=THRESHOLD,
            parameters=FINE_TUNING,
            datasets=datasets,
            training_data=REHEARSAL_ALIAS,
        )
        await loop.aclose()
        return loop.deployment_id, loop.feedback_id
    finally:
        await db.close()


@pytest.fixture(scope="module")
def world(platform: Settings, api_key: str, client: Client) -> DetectionWorld:
    deployment_id, feedback_id = asyncio.run(_build(platform, api_key))
    deployment = client.get_deployment_by_id(deployment_id)
    scenes = scene_examples(DRIFTED, THRESHOLD, seed=21, held_out=True)
    eventually(lambda: _predicts(deployment, scenes[0].image), timeout_s=120)
    for example in scenes[1:]:
        deployment.predict(example.image)
    return DetectionWorld(deployment_id, feedback_id, scenes)


def _predicts(deployment: Deployment, image: bytes) -> bool:
    try:
        deployment.predict(image)
    except CvloopError:  # serving has not learnt of the deployment yet
        return False
    return True


def test_review_boxes_submit_and_promote_the_retrained_detector(
    page: Page, world: DetectionWorld, client: Client, screenshots: Path
) -> None:
    deployment = client.get_deployment_by_id(world.deployment_id)
    assets = eventually(
        lambda: (found := deployment.list_predicted_assets()) and len(found) == THRESHOLD and found
    )
    by_image = {a.data["image_sha256"]: a.data for a in assets}
    champion_id = str(deployment.champion_model_version_id)
    for example in world.scenes:
        asset = by_image[hashlib.sha256(example.image).hexdigest()]
        _review_with_the_mouse(page, asset, example)
        review = deployment.get_predicted_asset(asset["prediction_id"]).data["review"]
        assert review["classes"] == example.truth.classes
        for drawn, true in zip(review["boxes"], example.truth.boxes, strict=True):
            assert all(abs(a - b) <= 1.0 for a, b in zip(drawn, true, strict=True)), (drawn, true)

    page.goto(f"/review/deployments/{world.deployment_id}")
    expect(page.locator(".card[data-status='REVIEWED']")).to_have_count(THRESHOLD)
    page.click("#select-reviewed")
    page.select_option("#dataset-version", str(world.feedback_id))
    page.click("#submit-selected")
    expect(page.locator("#message")).to_have_text(f"Submitted {THRESHOLD} to the feedback loop.")

    shadow_id = eventually(
        lambda: (
            (shadow := client.get_deployment_by_id(world.deployment_id).shadow_model_version_id)
            and str(shadow)
        ),
        timeout_s=TRAINING_S,
    )
    new = client.get_model_version_by_id(shadow_id)
    assert {"model.onnx", "model.pt"} <= {f["name"] for f in new.data["files"]}
    page.goto(f"/review/deployments/{world.deployment_id}/pipeline")
    expect(page.locator("#comparison tr", has_text="Model version")).to_contain_text(
        f"digits-detector {new.version}"
    )
    page.screenshot(path=screenshots / "14-detection-loop.png", full_page=True)
    page.click("#promote")
    expect(page.locator("#message")).to_have_text(f"Promoted: digits-detector {new.version} is the champion.")
    promoted = client.get_deployment_by_id(world.deployment_id)
    assert str(promoted.champion_model_version_id) == shadow_id != champion_id
    image = world.scenes[0].image
    eventually(lambda: str(promoted.predict(image).model_version_id) == shadow_id, timeout_s=60)


def _review_with_the_mouse(page: Page, asset: dict[str, Any], example: Example) -> None:
    """Delete every box the champion answered (a click selects one, Delete removes it), draw each true
    box from corner to corner, give it its digit, mark the prediction reviewed."""
    page.goto(f"/review/predictions/{asset['prediction_id']}")
    expect(page.locator("#facts")).to_contain_text("TO REVIEW")
    stage = page.locator("#shapes").bounding_box()
    assert stage is not None
    scale = stage["width"] / asset["width"]

    def at(x: float, y: float) -> tuple[float, float]:
        return stage["x"] + x * scale, stage["y"] + y * scale

    predicted = asset["champion_prediction"]["boxes"]
    expect(page.locator("#shape-list li")).to_have_count(len(predicted))
    for count, (x1, y1, x2, y2) in enumerate(predicted):
        page.mouse.click(*at((x1 + x2) / 2, (y1 + y2) / 2))
        page.keyboard.press("Delete")
        expect(page.locator("#shape-list li")).to_have_count(len(predicted) - count - 1)
    for count, (label, (x1, y1, x2, y2)) in enumerate(
        zip(example.truth.classes, example.truth.boxes, strict=True), start=1
    ):
        page.mouse.move(*at(x1, y1))
        page.mouse.down()
        page.mouse.move(*at(x2, y2), steps=4)
        page.mouse.up()
        expect(page.locator("#shape-list li")).to_have_count(count)
        page.select_option("#shape-class", label)
    page.click("#mark-reviewed")
    expect(page.locator("#facts .badge")).to_have_text("REVIEWED")
