"""The review page in a real browser, on real data (tests/browser/world.py): the deployments and their
badges, the grid's filters and order, an asset reviewed (class changed) and submitted to the feedback
loop with its state changing, the submission reaching the threshold so the pipeline trains (its count
reset, the training job on the pipeline and jobs pages with the trainer's log), champion and shadow
toggled, boxes edited, the served deployment's comparison, its own submission trained and deployed as the
new shadow by deploy_shadow, that shadow promoted, jobs with their logs. Each page is photographed (see
conftest.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from cvloop.demo.digits import digit_images, png
from cvloop.sdk import Client
from cvloop.stack.settings import sdk_settings
from services.common.settings import Settings
from tests.browser.world import (
    COMPARED,
    DIGIT_AT,
    LOGGED,
    PROBES,
    REVIEWED_BEFORE,
    SERVED,
    SERVED_THRESHOLD,
    SHIFTED,
    THRESHOLD,
    World,
    predict_and_review,
    shadow_answers,
    training_job,
)
from tests.sdk_support import eventually

SHOWN = len(LOGGED) + len(SHIFTED)  # every logged prediction fits one grid page
TRAINING_S = 300  # a training requested, run by the job runner and exported, on a loaded machine


def top_class(prediction: dict) -> str:
    return prediction["classes"][prediction["scores"].index(max(prediction["scores"]))]


def test_deployments_show_what_their_pipeline_has(page: Page, world: World, screenshots: Path) -> None:
    classifier = page.locator(f"tr[data-deployment='{world.classifier.id}']")
    for name in ("training data ready", "feedback loop", "continuous training", "continuous deployment"):
        expect(classifier.locator(".badge.on", has_text=name)).to_have_count(1)
    detector = page.locator(f"tr[data-deployment='{world.detector.id}']")
    expect(detector.locator(".badge.on")).to_have_count(0)  # nothing set up there
    expect(detector.locator(".badge.failed")).to_have_text("training data failed")
    expect(detector.locator(".badge.off")).to_have_count(3)
    page.screenshot(path=screenshots / "01-deployments.png", full_page=True)


def test_grid_filters_and_sorts_by_outlier_score(
    page: Page, world: World, client: Client, screenshots: Path
) -> None:
    page.click(f"text={world.classifier.name}")
    expect(page.locator(".card")).to_have_count(SHOWN)

    page.select_option("select[name=order]", "most_outlying")
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(re.compile("order=most_outlying"))
    expected = [
        str(a.id)
        for a in client.get_deployment_by_id(world.classifier.id).list_predicted_assets(order="most_outlying")
    ]
    # The whole grid, not its first card: the newest image may also be the most outlying one, so the
    # first card can match before the grid is drawn again in the new order.
    cards = page.locator(".card")
    eventually(lambda: cards.evaluate_all("cards => cards.map(c => c.dataset.prediction)") == expected, 30)
    scores = [float(t.removeprefix("outlier ")) for t in page.locator(".card .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    page.screenshot(path=screenshots / "02-predictions.png", full_page=True)

    page.fill("input[name=tags]", "rotated")
    page.click("#filters button[type=submit]")
    expect(page.locator(".card")).to_have_count(1)
    expect(page.locator("#total")).to_have_text("1-1 of 1")

    page.fill("input[name=tags]", "")
    page.fill("input[name=min_outlier_score]", f"{scores[2]:.2f}")
    page.click("#filters button[type=submit]")
    expect(page.locator(".card")).to_have_count(sum(s >= float(f"{scores[2]:.2f}") for s in scores))

    page.fill("input[name=min_outlier_score]", "")
    page.fill("input[name=since]", "2000-01-01T00:00")
    page.fill("input[name=until]", "2001-01-01T00:00")
    page.click("#filters button[type=submit]")
    expect(page.locator("#total")).to_have_text("no predicted assets match")


def test_the_review_queue_marks_its_audit_slice(page: Page, world: World, client: Client) -> None:
    deployment = client.get_deployment_by_id(world.classifier.id)
    before = deployment.review_queue()
    deployment.set_review_queue(audit_fraction=0.5)  # enough audited cards on one page to see
    try:
        queue = deployment.list_predicted_assets(status="TO_REVIEW", order="most_instructive", limit=24)
        audited = [str(a.id) for a in queue if a.data["audit"]]
        assert 0 < len(audited) < len(queue)

        page.goto(f"/review/deployments/{world.classifier.id}?status=TO_REVIEW")  # the queue by default
        expect(page.locator(".card")).to_have_count(len(queue))
        shown = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.prediction)")
        assert shown == [str(a.id) for a in queue]
        expect(page.locator(".card .badge.audit")).to_have_count(len(audited))
        for prediction_id in audited:
            expect(page.locator(f".card[data-prediction='{prediction_id}'] .badge.audit")).to_have_text(
                "audit"
            )
    finally:
        deployment.set_review_queue(**before.model_dump())


def _disagreeing(client: Client, world: World) -> dict:
    """A predicted asset on which champion and shadow answer different digits (else the first)."""
    assets = [
        a.data
        for a in client.get_deployment_by_id(world.classifier.id).list_predicted_assets(status="TO_REVIEW")
    ]
    return next(
        (a for a in assets if top_class(a["champion_prediction"]) != top_class(a["shadow_prediction"])),
        assets[0],
    )


def test_toggle_champion_and_shadow(page: Page, world: World, client: Client, screenshots: Path) -> None:
    asset = _disagreeing(client, world)
    page.goto(f"/review/predictions/{asset['prediction_id']}")
    champion, shadow = top_class(asset["champion_prediction"]), top_class(asset["shadow_prediction"])
    expect(page.locator("#shown-caption")).to_contain_text(f"champion: {champion} (")
    page.click("#show-shadow")
    expect(page.locator("#shown-caption")).to_contain_text(f"shadow: {shadow} (")
    expect(page.locator("#show-shadow")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#show-champion")).to_have_attribute("aria-pressed", "false")
    page.click("#show-champion")
    expect(page.locator("#shown-caption")).to_contain_text(f"champion: {champion} (")


def test_review_an_asset_submit_it_and_see_the_pipeline_train(
    page: Page, world: World, client: Client, screenshots: Path
) -> None:
    deployment = client.get_deployment_by_id(world.classifier.id)
    assert deployment.data["continuous_training"]["submitted_since_training"] == 0
    asset = _disagreeing(client, world)
    corrected = next(
        label
        for label in reversed(asset["champion_prediction"]["classes"])
        if label != top_class(asset["champion_prediction"])
    )

    page.goto(f"/review/predictions/{asset['prediction_id']}")
    expect(page.locator("#facts")).to_contain_text("TO REVIEW")
    page.click("#show-shadow")
    page.select_option("#class-choice", corrected)
    expect(page.locator("#shown-caption")).to_have_text(f"review: {corrected} (1.00)")
    page.screenshot(path=screenshots / "03-asset-classification.png", full_page=True)
    page.click("#mark-reviewed")
    expect(page.locator("#message")).to_have_text(f"Reviewed: {corrected} (1.00).")
    expect(page.locator("#facts .badge")).to_have_text("REVIEWED")
    reviewed = deployment.get_predicted_asset(asset["prediction_id"])
    assert reviewed.status == "REVIEWED" and reviewed.data["review"]["classes"] == [corrected]

    page.goto(f"/review/deployments/{world.classifier.id}")
    card = page.locator(f".card[data-prediction='{asset['prediction_id']}']")
    expect(card).to_have_attribute("data-status", "REVIEWED")
    reviewed_ids = [str(a.id) for a in deployment.list_predicted_assets(status="REVIEWED")]
    assert asset["prediction_id"] in reviewed_ids and len(reviewed_ids) == REVIEWED_BEFORE + 1
    page.click("#select-reviewed")
    checked = page.locator(".card:has(.pick:checked)")
    expect(checked).to_have_count(len(reviewed_ids))
    assert sorted(checked.evaluate_all("cards => cards.map(c => c.dataset.prediction)")) == sorted(
        reviewed_ids
    )
    expect(page.locator("#dataset-version")).to_have_value(world.feedback_version_id)
    expect(page.locator("#dataset-version option")).to_have_text(["digits · feedback-1"])
    page.click("#submit-selected")
    expect(page.locator("#message")).to_have_text(f"Submitted {len(reviewed_ids)} to the feedback loop.")
    expect(card).to_have_attribute("data-status", "SUBMITTED")
    expect(card.locator(".badge")).to_have_text("SUBMITTED")
    submitted = deployment.get_predicted_asset(asset["prediction_id"]).data
    assert submitted["status"] == "SUBMITTED"
    assert submitted["submitted_dataset_version_id"] == world.feedback_version_id

    # The submission reached the threshold: the pipeline requested a training, so the count starts again.
    assert len(reviewed_ids) == THRESHOLD
    job = eventually(lambda: training_job(client, world.feedback_version_id), timeout_s=120)
    page.click("text=Pipeline settings")
    expect(page.locator("#submitted-since-training")).to_have_text("0")
    expect(page.locator("#comparison tr", has_text="Reviewed")).to_contain_text(str(len(reviewed_ids)))
    training = page.locator("#jobs tr", has=page.locator(f"a[href='/review/jobs/{job['id']}']"))
    expect(training).to_contain_text("training")

    # Its job's page: the reference trainer's lines, while it runs or once it has finished.
    training.locator("a").click()
    expect(page.locator("#logs")).to_contain_text('"msg":"epoch"', timeout=TRAINING_S * 1000)


def test_edit_boxes_of_a_detection(page: Page, world: World, client: Client, screenshots: Path) -> None:
    asset = world.detector.list_predicted_assets()[0].data
    [ink] = asset["champion_prediction"]["boxes"]
    page.goto(f"/review/predictions/{asset['prediction_id']}")
    expect(page.locator("#shape-list li")).to_have_count(1)
    stage = page.locator("#shapes").bounding_box()
    assert stage is not None
    scale = stage["width"] / asset["width"]

    def at(x: float, y: float) -> tuple[float, float]:
        return stage["x"] + x * scale, stage["y"] + y * scale

    def drag(start: tuple[float, float], end: tuple[float, float]) -> None:
        page.mouse.move(*at(*start))
        page.mouse.down()
        page.mouse.move(*at(*end), steps=4)
        page.mouse.up()

    # Move the predicted box 3 px right and 2 px down (the digit sits at DIGIT_AT: there is room).
    center = ((ink[0] + ink[2]) / 2, (ink[1] + ink[3]) / 2)
    drag(center, (center[0] + 3, center[1] + 2))
    moved = [ink[0] + 3, ink[1] + 2, ink[2] + 3, ink[3] + 2]
    # Draw a box right of the digit, then resize it by its corner handle, and make it a stroke.
    left = DIGIT_AT[0] + 32 + 4
    drag((left, 10), (left + 8, 20))
    expect(page.locator("#shape-list li")).to_have_count(2)
    handle = 0.06 * asset["width"] / 2
    drag((left + 8 - handle, 20 - handle), (left + 12, 26))
    page.select_option("#shape-class", "stroke")
    # A third box, deleted again.
    drag((left, 30), (left + 6, 40))
    expect(page.locator("#shape-list li")).to_have_count(3)
    page.click("#delete-shape")
    expect(page.locator("#shape-list li")).to_have_count(2)
    drag((left, 30), (left + 6, 40))  # and one more, deleted with the keyboard
    expect(page.locator("#shape-list li")).to_have_count(3)
    page.keyboard.press("Delete")
    expect(page.locator("#shape-list li")).to_have_count(2)
    page.screenshot(path=screenshots / "04-asset-detection.png", full_page=True)
    page.click("#mark-reviewed")
    expect(page.locator("#facts .badge")).to_have_text("REVIEWED")

    review = world.detector.get_predicted_asset(asset["prediction_id"]).data["review"]
    assert review["classes"] == ["digit", "stroke"]
    assert [round(v) for v in review["boxes"][0]] == [round(v) for v in moved]
    assert [round(v) for v in review["boxes"][1]] == [left, 10, left + 12, 26]


def test_compare_then_train_a_new_shadow_and_promote_it(
    page: Page, world: World, client: Client, screenshots: Path
) -> None:
    """On the served deployment: the comparison of what Triton answered; its reviewed predictions
    submitted from the page reach the threshold, the pipeline trains and deploy_shadow makes the new
    version the shadow, which serving then runs; the comparison shows it, and its promotion is followed
    by serving: its next answer comes from the new version."""
    compared = client.api.get(f"/v1/deployments/{world.served.id}/comparison")
    assert compared["champion"]["predictions"] > len(SERVED) // 2 and compared["shadow"]["predictions"] > 0
    page.goto(f"/review/deployments/{world.served.id}/pipeline")
    table = page.locator("#comparison")
    versions = table.locator("tr", has_text="Model version")
    expect(versions).to_contain_text("digits-classifier 1")
    expect(versions).to_contain_text("digits-classifier 2")
    accuracy = f"{compared['shadow']['quality']['accuracy']:.3f}"
    expect(table.locator("tr", has_text="Accuracy")).to_contain_text(accuracy)
    expect(table.locator("tr", has_text="Reviewed")).to_contain_text(str(len(SERVED) // 2))
    expect(page.locator("#agreement")).to_have_text(f"{compared['agreement']:.3f}")
    p50 = f"{compared['shadow']['latency_p50_ms']:.2f} ms"
    expect(table.locator("tr", has_text="Latency p50")).to_contain_text(p50)

    page.goto(f"/review/deployments/{world.served.id}")
    # The grid is filled by a fetch after the page loads: select once its reviewed cards are there.
    expect(page.locator(".card[data-status='REVIEWED']")).to_have_count(SERVED_THRESHOLD)
    page.click("#select-reviewed")
    expect(page.locator(".card:has(.pick:checked)")).to_have_count(SERVED_THRESHOLD)
    page.select_option("#dataset-version", world.served_feedback_version_id)
    page.click("#submit-selected")
    expect(page.locator("#message")).to_have_text(f"Submitted {SERVED_THRESHOLD} to the feedback loop.")

    deployment = client.get_deployment_by_id(world.served.id)
    shadow_id = eventually(
        lambda: (
            (shadow := client.get_deployment_by_id(world.served.id).shadow_model_version_id)
            and str(shadow) != world.shadow_id
            and str(shadow)
        ),
        timeout_s=TRAINING_S,
    )
    job = training_job(client, world.served_feedback_version_id)
    assert job is not None and job["latest_run"]["status"] == "succeeded"
    new = client.get_model_version_by_id(shadow_id)
    assert new.data["source_experiment_id"] == job["target_id"]
    images = iter(png(pixels) for pixels in digit_images()[PROBES.start : PROBES.stop])
    eventually(lambda: shadow_answers(deployment, shadow_id, next(images)), interval_s=0.5, timeout_s=100)
    predict_and_review(deployment, COMPARED)

    compared = client.api.get(f"/v1/deployments/{world.served.id}/comparison")
    assert compared["shadow"]["predictions"] > len(COMPARED)
    page.goto(f"/review/deployments/{world.served.id}/pipeline")
    expect(versions).to_contain_text(f"digits-classifier {new.version}")
    accuracy = f"{compared['shadow']['quality']['accuracy']:.3f}"
    expect(table.locator("tr", has_text="Accuracy")).to_contain_text(accuracy)
    expect(page.locator("#agreement")).to_have_text(f"{compared['agreement']:.3f}")
    expect(page.locator("#submitted-since-training")).to_have_text("0")
    page.screenshot(path=screenshots / "05-pipeline.png", full_page=True)
    page.click("#promote")
    promoted = f"Promoted: digits-classifier {new.version} is the champion."
    expect(page.locator("#message")).to_have_text(promoted)
    expect(page.locator("#promote")).to_be_disabled()
    deployment = client.get_deployment_by_id(world.served.id)
    assert str(deployment.champion_model_version_id) == shadow_id
    assert deployment.shadow_model_version_id is None
    image = png(digit_images()[SERVED[0]])
    eventually(lambda: str(deployment.predict(image).model_version_id) == shadow_id, timeout_s=60)


def test_jobs_and_their_logs(page: Page, world: World, client: Client, screenshots: Path) -> None:
    """The training jobs the pipeline requested beside the training data's reference jobs; a training's
    page with the trainer's log (the served deployment's, which measures accuracy on `test`)."""
    job = world.classifier.training_data_job()
    assert job is not None
    page.click("header >> text=Jobs")
    row = page.locator("#jobs tr", has=page.locator(f"a[href='/review/jobs/{job.id}']"))
    expect(row.locator(".badge")).to_have_text("succeeded")
    failed = world.detector.training_data_job()
    assert failed is not None
    failed_row = page.locator("#jobs tr", has=page.locator(f"a[href='/review/jobs/{failed.id}']"))
    expect(failed_row.locator(".badge")).to_have_text("failed")
    expect(failed_row).to_contain_text("at least 2 are needed")
    trainings = [
        training_job(client, v) for v in (world.feedback_version_id, world.served_feedback_version_id)
    ]
    assert all(trainings)
    training_rows = page.locator("#jobs tr", has=page.get_by_role("link", name="training", exact=True))
    expect(training_rows).to_have_count(2)
    page.screenshot(path=screenshots / "06-jobs.png", full_page=True)

    trained = trainings[1]
    assert trained is not None
    page.goto(f"/review/jobs/{trained['id']}")
    expect(page.locator("#log-state")).to_have_text("finished", timeout=TRAINING_S * 1000)
    expect(page.locator("#runs .badge")).to_have_text(["succeeded"])
    lines = client.api.get(f"/v1/jobs/{trained['id']}/logs")["lines"]
    assert any('"msg":"epoch"' in line["text"] for line in lines)
    written = [line["text"] for line in lines if '"msg":"model written"' in line["text"]]
    assert len(written) == 1 and '"accuracy_before"' in written[0] and '"accuracy_after"' in written[0]
    expect(page.locator("#logs")).to_have_text("".join(f"{line['text']}\n" for line in lines))
    page.screenshot(path=screenshots / "07-job-logs.png", full_page=True)

    page.goto(f"/review/jobs/{job.id}")  # a reference job's log too
    expect(page.locator("#log-state")).to_have_text("finished")
    reference = client.api.get(f"/v1/jobs/{job.id}/logs")["lines"]
    assert reference
    expect(page.locator("#logs")).to_have_text("".join(f"{line['text']}\n" for line in reference))


STEPS = 4
SLOW_COMMAND = [
    sys.executable,
    "-c",
    f"import time\nfor i in range({STEPS}):\n"
    f"    print(f'step {{i + 1}} of {STEPS}', flush=True)\n    time.sleep(1)",
]


def test_a_running_jobs_logs_arrive_live(page: Page, world: World, client: Client) -> None:
    processing = client.create_processing("count-slowly", command=SLOW_COMMAND, description="a line a second")
    job = client.get_model_version_by_id(world.champion_id).launch_processing(processing)
    page.goto(f"/review/jobs/{job.id}")
    expect(page.locator("#log-state")).to_have_text("live")
    expect(page.locator("#logs")).to_contain_text("step 1 of")  # a line shown while the run goes on
    expect(page.locator("#log-state")).to_have_text("finished", timeout=60_000)
    lines = client.api.get(f"/v1/jobs/{job.id}/logs")["lines"]  # the runner's own lines around the command's
    assert [f"step {i} of {STEPS}" for i in range(1, STEPS + 1)] == [
        line["text"] for line in lines if line["text"].startswith("step ")
    ]
    expect(page.locator("#logs")).to_have_text("".join(f"{line['text']}\n" for line in lines))
    expect(page.locator("#runs .badge")).to_have_text(["succeeded"])


def test_a_wrong_key_gets_the_apis_answer(platform: Settings, browser: Browser) -> None:
    context = browser.new_context(base_url=sdk_settings(platform).api_url)
    page = context.new_page()
    page.goto("/review")
    expect(page.locator("#message")).to_have_text("Enter an API key of your project to see its deployments.")
    page.fill("#key-input", "not-a-key")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#message")).to_have_class(re.compile("error"))
    expect(page.locator("#message")).to_contain_text("401: authorization:")
    expect(page.locator("#deployments tbody tr")).to_have_count(0)
    page.click("#key-forget")
    expect(page.locator("#key-input")).to_be_visible()
    context.close()
