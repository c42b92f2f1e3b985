"""Segmentation end to end through the real api and ingest (on the real Postgres, broker and S3): a
polygon prediction logged through the monitor API, reviewed in the browser (a point dragged, a point
added on an edge, a shape drawn and given another class, one drawn and deleted), submitted from the grid
into a feedback-loop dataset version whose annotation carries the edited polygons, and mask AP beside box
AP in the champion's comparison, equal to pycocotools' `segm` figures on the same review."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench.mask_quality import pycocotools_segm
from cvloop.sdk import Client, Deployment
from cvloop.stack import service
from schemas.predictions import SegmentationPrediction
from services.common.settings import Settings
from tests.sdk_support import eventually, png, running

WIDTH, HEIGHT = 64, 48
CAR = [(8.0, 8.0), (40.0, 8.0), (40.0, 30.0), (8.0, 30.0)]  # what the model answered


@pytest.fixture(scope="module")
def platform(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> Iterator[Settings]:
    """Only what a monitoring-only deployment's review needs: the api, and ingest (the monitor API and
    the persistence of its predictions); no Triton."""
    with running(service.Api(postgres_settings), service.Ingest(postgres_settings)):
        yield postgres_settings


@dataclass(frozen=True)
class Segmenter:
    deployment: Deployment
    feedback_version_id: str
    prediction_id: str


@pytest.fixture(scope="module")
def segmenter(client: Client) -> Segmenter:
    labelmap = client.create_labelmap("road", ["car", "person"])
    version = client.create_model("road-segmenter").create_version("1", "segmentation", labelmap=labelmap)
    deployment = client.create_deployment("road-camera", version, kind="monitoring_only")
    feedback = client.create_dataset("road").create_version("feedback-1", "segmentation", labelmap=labelmap)
    deployment.attach_dataset_version_to_feedback_loop(feedback)
    answer = SegmentationPrediction(polygons=[CAR], classes=["car"], scores=[0.9])
    prediction_id = deployment.monitor(png(7, WIDTH, HEIGHT), latency=4.0, prediction=answer)
    eventually(lambda: deployment.list_predicted_assets(), timeout_s=60)
    return Segmenter(deployment, str(feedback.id), str(prediction_id))


@pytest.fixture
def page(segmenter: Segmenter, signed_in: Page) -> Page:
    return signed_in


def test_review_polygons_submit_them_and_see_mask_ap(
    page: Page, segmenter: Segmenter, client: Client, screenshots: Path
) -> None:
    page.goto(f"/review/predictions/{segmenter.prediction_id}")
    expect(page.locator("#shape-list li")).to_have_text(["car 4 points"])
    stage = page.locator("#shapes").bounding_box()
    assert stage is not None
    scale = stage["width"] / WIDTH

    def at(x: float, y: float) -> tuple[float, float]:
        return stage["x"] + x * scale, stage["y"] + y * scale

    def drag(start: tuple[float, float], end: tuple[float, float]) -> None:
        page.mouse.move(*at(*start))
        page.mouse.down()
        page.mouse.move(*at(*end), steps=4)
        page.mouse.up()

    drag(CAR[1], (48, 4))  # the top right point, dragged out
    expect(page.locator("#shown-caption")).to_have_text("review: 1 polygon")
    page.mouse.dblclick(*at(8, 19))  # on the left edge: a fifth point there
    expect(page.locator("#shape-list li")).to_have_text(["car 5 points"])
    drag((50, 34), (60, 44))  # a new shape on empty ground, made a person
    page.select_option("#shape-class", "person")
    drag((2, 36), (6, 44))  # and one more, deleted again
    expect(page.locator("#shape-list li")).to_have_count(3)
    page.click("#delete-shape")
    expect(page.locator("#shape-list li")).to_have_text(["car 5 points", "person 4 points"])
    page.screenshot(path=screenshots / "13-asset-segmentation.png", full_page=True)
    page.click("#mark-reviewed")
    expect(page.locator("#facts .badge")).to_have_text("REVIEWED")

    deployment = segmenter.deployment
    review = deployment.get_predicted_asset(segmenter.prediction_id).data["review"]
    assert review["classes"] == ["car", "person"]
    car, person = ([[round(v) for v in point] for point in polygon] for polygon in review["polygons"])
    assert car == [[8, 8], [48, 4], [40, 30], [8, 30], [8, 19]]
    assert person == [[50, 34], [60, 34], [60, 44], [50, 44]]

    page.goto(f"/review/deployments/{deployment.id}")
    expect(page.locator(".card[data-status='REVIEWED']")).to_have_count(1)
    page.click("#select-reviewed")
    expect(page.locator("#dataset-version")).to_have_value(segmenter.feedback_version_id)
    page.click("#submit-selected")
    expect(page.locator("#message")).to_have_text("Submitted 1 to the feedback loop.")
    [asset] = client.get_dataset_version_by_id(segmenter.feedback_version_id).list_assets()
    [annotation] = asset.annotations
    assert annotation["shapes"]["polygons"] == review["polygons"]
    assert annotation["shapes"]["classes"] == ["car", "person"]

    quality = client.api.get(f"/v1/deployments/{deployment.id}/comparison")["champion"]["quality"]
    pair = (
        SegmentationPrediction.model_validate(review),
        SegmentationPrediction(polygons=[CAR], classes=["car"], scores=[0.9]),
    )
    expected = pycocotools_segm([pair], [(WIDTH, HEIGHT)])
    assert [quality["mask_ap"], quality["mask_ap50"], quality["mask_ar"]] == pytest.approx(expected, abs=1e-9)
    assert quality["mask_ap50"] == pytest.approx(0.5)  # the car found, the person missed
    page.goto(f"/review/deployments/{deployment.id}/pipeline")
    table = page.locator("#comparison")
    for name, metric in (("Mask AP", "mask_ap"), ("Mask AP50", "mask_ap50"), ("Box AP", "ap")):
        expect(table.locator("tr").filter(has=page.get_by_text(name, exact=True))).to_contain_text(
            f"{quality[metric]:.3f}"
        )
    expect(table.locator("tr", has_text="Reviewed")).to_contain_text("1")
    page.screenshot(path=screenshots / "14-comparison-segmentation.png", full_page=True)
