"""The dashboard of a deployment in a real browser, on a deployment fed with a drifting stream: its
predictions, outlier scores and drift reports written through the repositories the ingest and scoring
streams write with (the times of the last day, two calm windows then a drifted one), some reviewed and
submitted through the SDK. The charts are drawn from the monitoring API; the drifted window is marked
and a click on it opens the review grid on that window's predictions, most outlying first.

Only the api runs: the world is written as the streams would have written it, so this module overrides
conftest's `platform` and `world`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from cvloop.demo.digits import DIGITS_IO, LABELS, train_linear_classifier
from cvloop.sdk import Client, Deployment
from cvloop.stack import service
from schemas.events import (
    ImageRef,
    MultipleTestingCorrection,
    PredictionLogged,
    PredictionSource,
    RoleResult,
)
from schemas.predictions import ClassificationPrediction
from services.common.db.pool import create_pool
from services.common.db.repositories import drift_reports, predicted_assets, prediction_scores
from services.common.domain.scoring import Score
from services.common.settings import Settings
from services.scoring.drift import DriftWindow, drift_report
from tests.sdk_support import png, running

FEATURES = ("brightness", "contrast", "sharpness")
HOUR = timedelta(hours=1)
# Hours before the current hour at which two predictions each were made, per drift window: the last
# window's features are shifted (drift), and its predictions score as outliers.
CALM_WINDOWS = [range(21, 15, -1), range(15, 9, -1)]
DRIFTED_WINDOW = range(6, 3, -1)
CALM_SCORES = [0.05 * (1 + i % 10) for i in range(12)]  # two an hour, at most 0.5
DRIFTED_SCORES = [0.97, 0.999, 0.991, 0.995, 0.98, 0.993]
STRAY = 0.9999  # the most outlying prediction of all, in a calm window: not the drifted window's
REVIEWED_CALM = 4  # reviewed as the champion says, the first of the calm windows'
REVIEWED_DRIFTED = 3  # reviewed as the shadow says
SUBMITTED = 2  # of the reviewed, submitted to the feedback loop
THRESHOLD = 5
CHAMPION_SAYS, SHADOW_SAYS = "1", "7"


@dataclass(frozen=True)
class Drifting:
    deployment: Deployment
    drifted: list[tuple[UUID, float]]  # the drifted window's predictions and their outlier scores
    stray: UUID


@pytest.fixture(scope="module")
def platform(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> Iterator[Settings]:
    with running(service.Api(postgres_settings)):
        yield postgres_settings


def _answer(label: str) -> ClassificationPrediction:
    return ClassificationPrediction(classes=LABELS, scores=[0.9 if c == label else 0.1 / 9 for c in LABELS])


def _logged(deployment: Deployment, image: ImageRef, at: datetime) -> PredictionLogged:
    return PredictionLogged(
        deployment_id=deployment.id,
        prediction_id=uuid4(),
        detection_type="classification",
        image=image,
        champion=RoleResult(
            model_version_id=deployment.champion_model_version_id,
            prediction=_answer(CHAMPION_SAYS),
            latency_ms=12.0,
        ),
        shadow=RoleResult(
            model_version_id=deployment.shadow_model_version_id,
            prediction=_answer(SHADOW_SAYS),
            latency_ms=30.0,
        ),
        source=PredictionSource.MONITOR_API,
        predicted_at=at,
    )


async def _stream(
    settings: Settings, project_id: UUID, deployment: Deployment, images: list[ImageRef]
) -> tuple[list[list[tuple[UUID, float]]], UUID]:
    """Each window's predictions with their outlier scores, and the window's drift report, as ingest and
    scoring record them; answers the predictions per window and the stray outlier."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(19)
    reference = np.sort(rng.normal(0.0, 1.0, (500, len(FEATURES))), axis=0)  # sorted, as stored
    reference_id = uuid4()
    pool = await create_pool(settings.database_url)
    windows: list[list[tuple[UUID, float]]] = []
    stray = uuid4()
    try:
        total = 0
        shapes = [(hours, CALM_SCORES, 0.0) for hours in CALM_WINDOWS] + [
            (DRIFTED_WINDOW, DRIFTED_SCORES, 3.0)
        ]
        for hours, scores, shift in shapes:
            times = [now - hour * HOUR + timedelta(minutes=m) for hour in hours for m in (10, 40)]
            events = [_logged(deployment, images.pop(), at) for at in times]
            for event in events:
                assert await predicted_assets.insert_prediction(pool, project_id, event)
            scored = [(e.prediction_id, s) for e, s in zip(events, scores, strict=True)]
            windows.append(scored)
            total += 200
            window = DriftWindow(
                reference_id,
                rng.normal(shift, 1.0, (200, len(FEATURES))),
                np.linspace(times[0].timestamp(), times[-1].timestamp(), 200),
                total,
            )
            report = drift_report(
                window,
                reference,
                FEATURES,
                deployment_id=deployment.id,
                alpha=0.01,
                correction=MultipleTestingCorrection.BONFERRONI,
            )
            assert report.drift_detected == bool(shift)
            assert await drift_reports.insert_drift_report(pool, project_id, report)
        # The most outlying prediction of all, made between the calm windows and the drifted one.
        event = _logged(deployment, images.pop(), now - 8 * HOUR)
        stray = event.prediction_id
        assert await predicted_assets.insert_prediction(pool, project_id, event)
        every = [*(p for w in windows for p in w), (stray, STRAY)]
        await prediction_scores.record_outlier_scores(
            pool, project_id, deployment.id, uuid4(), [Score(p, s) for p, s in every]
        )
    finally:
        await pool.close()
    return windows, stray


@pytest.fixture(scope="module")
def world(client: Client, platform: Settings) -> Drifting:
    labelmap = client.create_labelmap("digits", LABELS)
    model = client.create_model("digits-classifier")
    linear = train_linear_classifier()
    champion, shadow = (
        model.create_version(
            name, "classification", labelmap=labelmap, files={"model.onnx": linear.onnx}, io=DIGITS_IO
        )
        for name in ("1", "2")
    )
    deployment = client.create_deployment("drifting", champion, kind="monitoring_only")
    deployment = deployment.set_shadow_model(shadow)
    feedback = client.create_dataset("digits").create_version(
        "feedback-1", "classification", labelmap=labelmap
    )
    deployment.attach_dataset_version_to_feedback_loop(feedback)
    deployment.setup_continuous_training(dataset_versions={"train": feedback}, threshold=THRESHOLD)

    count = sum(len(h) * 2 for h in CALM_WINDOWS) + len(DRIFTED_WINDOW) * 2 + 1
    images = []
    for seed in range(count):
        stored = client.upload(png(1900 + seed), "images")
        images.append(
            ImageRef(
                object_key=stored.object_key,
                sha256=stored.sha256,
                width=64,
                height=48,
                content_type=stored.content_type,
            )
        )
    project_id = UUID(client.get_project()["id"])
    windows, stray = asyncio.run(_stream(platform, project_id, deployment, images))
    calm, drifted = windows[0], windows[-1]
    for prediction_id, _ in calm[:REVIEWED_CALM]:
        deployment.add_review(prediction_id, _answer(CHAMPION_SAYS).model_dump())
    for prediction_id, _ in drifted[:REVIEWED_DRIFTED]:
        deployment.add_review(prediction_id, _answer(SHADOW_SAYS).model_dump())
    deployment.submit_to_feedback_loop(feedback, [p for p, _ in calm[:SUBMITTED]])
    return Drifting(deployment, drifted, stray)


CHARTS = ["predictions", "latency", "histogram", "outlier-rate", "drift", "quality"]


def test_the_dashboard_draws_the_drift_and_opens_the_drifted_windows_predictions(
    page: Page, world: Drifting, screenshots: Path
) -> None:
    page.locator(f"#deployments tr[data-deployment='{world.deployment.id}']").locator(
        "text=dashboard"
    ).click()
    expect(page.locator("#deployment-name")).to_have_text("drifting · dashboard")
    expect(page.locator("#ranges [aria-pressed=true]")).to_have_text("Last 24 h")
    for name in CHARTS:
        expect(page.locator(f"[data-chart='{name}'] canvas").first).to_be_visible()
    points = {
        name: int(page.locator(f"[data-chart='{name}']").get_attribute("data-points")) for name in CHARTS
    }
    hours = sum(len(h) for h in CALM_WINDOWS) + len(DRIFTED_WINDOW) + 1  # the stray's hour too
    assert points["predictions"] == points["latency"] == 2 * hours  # champion and shadow per hour
    assert points["histogram"] == 2 * hours - 1  # every scored prediction: two an hour, one the stray's
    assert points["outlier-rate"] == hours
    assert points["drift"] == len(CALM_WINDOWS) + 1
    # Champion and shadow in each hour with reviews: two of the calm window's, two of the drifted one's.
    assert points["quality"] == 2 * (2 + 2)
    legend = page.locator("[data-chart='drift'] .u-legend")
    for feature in FEATURES:
        expect(legend).to_contain_text(feature)
    expect(page.locator("#backlog [data-status=TO_REVIEW]")).to_have_text(
        str(2 * hours - 1 - REVIEWED_CALM - REVIEWED_DRIFTED)
    )
    expect(page.locator("#backlog [data-status=REVIEWED]")).to_have_text(
        str(REVIEWED_CALM + REVIEWED_DRIFTED - SUBMITTED)
    )
    expect(page.locator("#backlog [data-status=SUBMITTED]")).to_have_text(str(SUBMITTED))
    expect(page.locator("#threshold-progress")).to_contain_text(f"{SUBMITTED} of {THRESHOLD} submitted")

    flagged = page.locator("[data-chart='drift'] a.flagged-window")
    expect(flagged).to_have_count(1)
    expect(page.locator("#flagged li")).to_have_count(1)
    expect(page.locator("#flagged li")).to_contain_text(", ".join(FEATURES))
    page.screenshot(path=screenshots / "12-dashboard.png", full_page=True)

    # The other ranges answer the same data (all of it is within the last day).
    page.click("#ranges [data-range='7d']")
    expect(page.locator("#ranges [aria-pressed=true]")).to_have_text("Last 7 d")
    expect(page.locator("[data-chart='drift'] a.flagged-window")).to_have_count(1)

    page.locator("[data-chart='drift'] a.flagged-window").click()
    expect(page.locator("#window")).to_contain_text("a drift window")
    ordered = sorted(world.drifted, key=lambda p: p[1], reverse=True)
    expect(page.locator(".card")).to_have_count(len(ordered))
    shown = [c.get_attribute("data-prediction") for c in page.locator(".card").all()]
    assert shown == [str(p) for p, _ in ordered]  # the window's, most outlying first; not the stray
    (report,) = world.deployment.drift(flagged=True)  # the SDK finds the same predictions
    listed = world.deployment.list_predicted_assets(
        predicted_since=report.window_start,
        predicted_until=report.window_end + timedelta(milliseconds=1),
        order="most_outlying",
    )
    assert [str(a.id) for a in listed] == shown
    expect(page.locator("#filters [name=order]")).to_have_value("most_outlying")

    # Filtering further keeps the window: the drifted window's predictions still to review.
    page.select_option("#filters [name=status]", "TO_REVIEW")
    page.click("#filters button[type=submit]")
    reviewed = {p for p, _ in world.drifted[:REVIEWED_DRIFTED]}
    to_review = [str(p) for p, _ in ordered if p not in reviewed]
    expect(page.locator(".card")).to_have_count(len(to_review))
    assert [c.get_attribute("data-prediction") for c in page.locator(".card").all()] == to_review
    expect(page.locator("#window")).to_contain_text("a drift window")
