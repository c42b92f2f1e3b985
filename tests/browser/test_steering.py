"""Steering from the web app in a real browser, on a deployment of its own that has nothing set up: its
whole pipeline configured through the page (training data, feedback loop, continuous training with an
alias and edited parameters, continuous deployment), the API's refusals shown in the forms, the
deployment's own settings (a classifier's confidence threshold refused, shadow); every REVIEWED
prediction selected across more than one page of cards and submitted with the count shown first, which
reaches the threshold and starts a training; a failed job re-run from its page; a processing registered
and launched from the form its parameter schema gives, its log followed live.

This module overrides conftest's `world` (the review page's) with its own, smaller one: the platform,
the project and the browser are started afresh for it."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from cvloop.demo.digits import DIGITS_IO, LABELS, digit_images, digit_label, png, train_linear_classifier
from cvloop.sdk import Client, Deployment, ModelVersion
from tests.browser.conftest import GATE_PAIRS
from tests.browser.world import Classifier, training_job
from tests.sdk_support import eventually

TRAINING_IMAGES = 30  # the training data: enough for its reference
LOGGED = range(1200, 1230)  # predictions logged; the first REVIEWED of them reviewed
REVIEWED = 26  # more than one page of cards (24): "select all reviewed" must reach past the first
GRID_PAGE = 24
FEEDBACK = "digits · feedback-1"  # how the page names the feedback dataset version


@dataclass(frozen=True)
class Steered:
    deployment: Deployment
    champion: ModelVersion
    other_version: ModelVersion
    feedback_version_id: str
    reviewed_on_camera_1: int  # REVIEWED predictions tagged camera-1


@pytest.fixture(scope="module")
def world(client: Client) -> Steered:
    """A monitoring-only deployment with predictions logged and some reviewed, and the dataset versions
    its pipeline will use, all made through the SDK; the pipeline itself left for the page."""
    images = digit_images()
    labelmap = client.create_labelmap("digits", LABELS)
    model = client.create_model("digits-classifier")
    linear = train_linear_classifier()
    versions = [
        model.create_version(
            name,
            "classification",
            labelmap=labelmap,
            files={"model.onnx": linear.onnx},
            io=DIGITS_IO,
            training_parameters={"epochs": 20, "learning_rate": 0.05},
        )
        for name in ("1", "2")
    ]
    deployment = client.create_deployment("steered", versions[0], kind="monitoring_only")
    dataset = client.create_dataset("digits")
    train = dataset.create_version("train", "classification", labelmap=labelmap)
    for index in range(TRAINING_IMAGES):
        train.add_asset(png(images[index]), _truth(index))
    feedback = dataset.create_version("feedback-1", "classification", labelmap=labelmap)

    run = Classifier(linear)
    logged = []
    for index in LOGGED:
        answer, latency = run(images[index])
        tags = ["camera-1" if index % 2 else "camera-2"]
        logged.append(
            (deployment.monitor(png(images[index]), latency=latency, prediction=answer, tags=tags), tags)
        )
    eventually(lambda: len(deployment.list_predicted_assets(limit=100)) == len(LOGGED), timeout_s=120)
    for (prediction_id, _), index in list(zip(logged, LOGGED, strict=True))[:REVIEWED]:
        deployment.add_review(prediction_id, _truth(index))
    on_camera_1 = sum("camera-1" in tags for _, tags in logged[:REVIEWED])
    return Steered(deployment, versions[0], versions[1], str(feedback.id), on_camera_1)


def _truth(index: int) -> dict:
    return {"type": "classification", "classes": [digit_label(index)], "scores": [1.0]}


def test_configure_the_whole_pipeline_from_the_page(
    page: Page, world: Steered, client: Client, screenshots: Path
) -> None:
    deployment_id = world.deployment.id
    page.goto(f"/review/deployments/{deployment_id}/pipeline")
    badges = page.locator("#badges")
    expect(badges.locator(".badge.off")).to_have_count(4)  # nothing set up yet

    # Training data: chosen, saved, its reference computed by the job runner.
    page.select_option("#training-data-form select", label="digits · train")
    page.click("#training-data-form button[type=submit]")
    expect(page.locator("#message")).to_have_text("Training data saved: its reference is computing.")
    eventually(lambda: client.get_deployment_by_id(deployment_id).get_training_data().status == "ready", 180)
    page.reload()
    expect(badges.locator(".badge.on")).to_have_text(["training data ready"])

    # Feedback loop.
    page.select_option("#feedback-loop-form select", label=FEEDBACK)
    page.click("#feedback-loop-form button[type=submit]")
    expect(page.locator("#feedback-loop li")).to_have_count(1)
    expect(page.locator("#feedback-loop li")).to_contain_text(FEEDBACK)

    # Continuous training: the API's refusals shown in the form, then saved and activated.
    ct = page.locator("#continuous-training-form")
    ct.locator("button[name=activate]").click()
    expect(ct.locator(".problems")).to_have_text(
        "body: threshold or a policy rule is required when active is true"
    )
    page.click("#ct-add-dataset-version")
    ct.locator("#ct-dataset-versions [name=alias]").fill("train")
    ct.locator("#ct-dataset-versions select").select_option(label=FEEDBACK)
    ct.locator("[name=threshold]").fill("0")
    ct.locator("button[name=activate]").click()
    expect(ct.locator(".problems")).to_have_text("body.threshold: Input should be greater than 0")
    expect(ct.locator("[name=threshold]")).to_have_attribute("aria-invalid", "true")
    ct.screenshot(path=screenshots / "08-continuous-training-refused.png")
    # The parameters start as the champion's; one edited, one added.
    names = ct.locator("#ct-parameters [name=parameter]")
    expect(names).to_have_count(2)
    assert sorted(names.evaluate_all("inputs => inputs.map(i => i.value)")) == ["epochs", "learning_rate"]
    ct.locator("#ct-parameters .row", has=page.locator("[value=epochs]")).locator("[name=value]").fill("3")
    page.click("#ct-add-parameter")
    ct.locator("#ct-parameters [name=parameter]").last.fill("note")
    ct.locator("#ct-parameters [name=value]").last.fill("from the page")
    ct.locator("[name=threshold]").fill(str(REVIEWED))
    # A trigger policy beside the threshold, as JSON: refused where a rule is out of bounds, then saved
    # (drift over 100 reports in a row: it never fires before the count here).
    ct.locator("[name=policy]").fill('{"drift": {"reports": 0}}')
    ct.locator("button[name=activate]").click()
    expect(ct.locator(".problems")).to_contain_text("body.policy.drift.reports:")
    policy = {"drift": {"reports": 100, "min_features": 5}, "cooldown_s": 600}
    ct.locator("[name=policy]").fill(json.dumps(policy))
    ct.locator("button[name=activate]").click()
    expect(page.locator("#message")).to_have_text("Continuous training saved and activated.")
    expect(page.locator("#continuous-training")).to_contain_text('"drift":{"reports":100,"min_features":5}')
    expect(ct.locator(".problems")).to_be_empty()
    expect(badges.locator(".badge.on", has_text="continuous training")).to_have_count(1)
    saved = client.get_deployment_by_id(deployment_id).data["continuous_training"]
    assert saved["dataset_versions"] == {"train": world.feedback_version_id}
    assert saved["training_parameters"] == {"epochs": 3, "learning_rate": 0.05, "note": "from the page"}
    assert (saved["threshold"], saved["active"]) == (REVIEWED, True)
    assert (saved["policy"]["drift"], saved["policy"]["cooldown_s"]) == (policy["drift"], 600)
    # Put on hold and back.
    page.click("#ct-toggle")
    expect(page.locator("#message")).to_have_text("Deactivated.")
    expect(badges.locator(".badge.off", has_text="continuous training")).to_have_count(1)
    assert not client.get_deployment_by_id(deployment_id).data["continuous_training"]["active"]
    page.click("#ct-toggle")
    expect(badges.locator(".badge.on", has_text="continuous training")).to_have_count(1)

    # Continuous deployment.
    page.select_option("#continuous-deployment-form [name=policy]", "manual")
    page.click("#continuous-deployment-form button[name=activate]")
    expect(page.locator("#message")).to_have_text("Continuous deployment saved and activated.")
    expect(badges.locator(".badge.on")).to_have_count(4)
    cd = client.get_deployment_by_id(deployment_id).data["continuous_deployment"]
    assert cd == {"policy": "manual", "active": True}

    # The deployment's own settings: its confidence threshold (refused out of range) and a shadow.
    threshold = page.locator("#threshold-form")
    threshold.locator("input").fill("1.5")
    threshold.locator("button").click()
    expect(threshold.locator(".problems")).to_contain_text("body.confidence_threshold:")
    # A classification deployment answers every class with its score: the page shows the API's refusal.
    threshold.locator("input").fill("0.25")
    threshold.locator("button").click()
    expect(threshold.locator(".problems")).to_contain_text("takes no confidence threshold")
    assert client.get_deployment_by_id(deployment_id).data["confidence_threshold"] == 0
    page.select_option("#shadow-form select", label="digits-classifier 2")
    page.click("#shadow-form button[type=submit]")
    expect(page.locator("#comparison tr", has_text="Model version")).to_contain_text("digits-classifier 2")
    assert str(client.get_deployment_by_id(deployment_id).shadow_model_version_id) == str(
        world.other_version.id
    )
    page.click("#remove-shadow")
    expect(page.locator("#message")).to_have_text("Shadow removed.")
    assert client.get_deployment_by_id(deployment_id).shadow_model_version_id is None
    expect(page.locator("#remove-shadow")).to_be_disabled()
    page.screenshot(path=screenshots / "09-pipeline-settings.png", full_page=True)


def test_select_all_reviewed_across_pages_and_see_the_pipeline_train(
    page: Page, world: Steered, client: Client, screenshots: Path
) -> None:
    deployment_id = world.deployment.id
    page.goto(f"/review/deployments/{deployment_id}")
    expect(page.locator(".card")).to_have_count(GRID_PAGE)
    submit = page.locator("#submit-selected")

    # Filtered: only those the filter matches, on every page.
    page.fill("input[name=tags]", "camera-1")
    page.click("#filters button[type=submit]")
    expect(page.locator("#total")).to_have_text(f"1-{len(LOGGED) // 2} of {len(LOGGED) // 2}")
    page.click("#select-reviewed")
    expect(submit).to_have_text(f"Submit {world.reviewed_on_camera_1} reviewed predictions to {FEEDBACK}")
    page.locator(".card .pick").first.click()  # a card ticked by hand: back to the ticked cards
    expect(page.locator("#selection")).to_be_empty()
    expect(submit).not_to_contain_text("reviewed predictions")

    page.fill("input[name=tags]", "")
    page.click("#filters button[type=submit]")
    expect(page.locator(".card")).to_have_count(GRID_PAGE)
    page.click("#select-reviewed")
    expect(page.locator("#selection")).to_have_text(
        f"{REVIEWED} reviewed predictions match the filter, on every page"
    )
    expect(submit).to_have_text(f"Submit {REVIEWED} reviewed predictions to {FEEDBACK}")
    page.locator(".actions").screenshot(path=screenshots / "11-select-all-reviewed.png")
    submit.click()
    expect(page.locator("#message")).to_have_text(f"Submitted {REVIEWED} to the feedback loop.")
    expect(page.locator(".card[data-status='REVIEWED']")).to_have_count(0)
    assets = world.deployment.list_predicted_assets(status="SUBMITTED", limit=100)
    assert len(assets) == REVIEWED
    assert {a.data["submitted_dataset_version_id"] for a in assets} == {world.feedback_version_id}

    # That reached the threshold the page set: the pipeline requested a training, the count starts again.
    job = eventually(lambda: training_job(client, world.feedback_version_id), timeout_s=120)
    page.click("text=Pipeline settings")
    expect(page.locator("#submitted-since-training")).to_have_text("0")
    expect(page.locator("#continuous-training")).to_contain_text(
        f"submitted (submitted={REVIEWED}, threshold={REVIEWED})"
    )
    expect(page.locator("#jobs tr", has=page.locator(f"a[href='/review/jobs/{job['id']}']"))).to_contain_text(
        "training"
    )


def test_rerun_a_failed_job_from_its_page(page: Page, world: Steered, client: Client) -> None:
    failing = client.create_processing(
        "fails", command=[sys.executable, "-c", "print('about to fail', flush=True); raise SystemExit(3)"]
    )
    job = world.champion.launch_processing(failing).wait(timeout_s=120)
    assert job.status == "failed"
    page.goto(f"/review/jobs/{job.id}")
    expect(page.locator("#runs .badge")).to_have_text(["failed"])
    expect(page.locator("#logs")).to_contain_text("about to fail")
    page.click("#rerun")
    expect(page.locator("#message")).to_have_text("Run 2 requested.")
    expect(page.locator("#runs .badge")).to_have_text(["failed", "failed"], timeout=60_000)
    expect(page.locator("#log-state")).to_have_text("finished")
    expect(page.locator("#logs")).to_contain_text("about to fail")
    expect(page.locator("#rerun")).to_be_enabled()
    runs = client.api.get(f"/v1/jobs/{job.id}")["runs"]
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failed"), (2, "failed")]


GREET = (
    "import json; p = json.load(open('parameters.json')); print('say', p['word'] * p['times'], flush=True)"
)
SCHEMA = (
    '{"properties": {"word": {"type": "string", "enum": ["hi", "bye"]},'
    ' "times": {"type": "integer", "default": 2, "description": "how many times"}}, "required": ["word"]}'
)


def test_register_and_launch_a_processing_from_its_form(
    page: Page, world: Steered, client: Client, screenshots: Path
) -> None:
    page.click("header >> text=Processings")
    form = page.locator("#create-form")
    form.locator("[name=name]").fill("greet")
    form.locator("[name=parameters_schema]").fill("{not json")
    form.locator("button").click()
    expect(form.locator(".problems")).to_contain_text("body.parameters_schema: not JSON")
    form.locator("[name=parameters_schema]").fill(SCHEMA)
    form.locator("button").click()
    expect(form.locator(".problems")).to_have_text("body: give a command or an image")  # the API's answer
    form.locator("[name=command]").fill("\n".join([sys.executable, "-c", GREET]))
    form.locator("button").click()
    expect(page.locator("#message")).to_have_text("Registered greet.")
    declared = page.locator("#processings tr", has_text="greet").locator("td").last
    expect(declared).to_contain_text("times")
    assert sorted(declared.inner_text().split(", ")) == ["times", "word"]

    launch = page.locator("#launch-form")
    expect(launch.locator("[name=processing_id]")).to_have_value(
        next(p["id"] for p in client.api.get("/v1/processings")["items"] if p["name"] == "greet")
    )
    launch.locator("[name=model_version_id]").select_option(label="digits-classifier 1")
    expect(launch.locator("#parameters [name=times]")).to_have_value("2")
    launch.locator("#parameters [name=times]").fill("3")
    launch.locator("#parameters [name=word]").select_option("bye")
    launch.locator("button[type=submit]").click()
    expect(page.locator("#message")).to_have_text("Processing launched.")
    expect(page.locator("#logs")).to_contain_text("say byebyebye", timeout=60_000)
    expect(page.locator("#log-state")).to_have_text("finished", timeout=60_000)
    page.screenshot(path=screenshots / "10-processings.png", full_page=True)
    job_id = page.locator("#launched-job").get_attribute("href").rsplit("/", 1)[-1]
    job = client.api.get(f"/v1/jobs/{job_id}")
    assert job["parameters"] == {"word": "bye", "times": 3}
    assert job["target_id"] == str(world.champion.id) and job["latest_run"]["status"] == "succeeded"


def test_the_promotion_gate_promotes_a_better_shadow_and_the_page_says_why(
    page: Page, world: Steered, client: Client, screenshots: Path
) -> None:
    """A deployment of its own under shadow_then_promote, its shadow right where the champion was wrong
    on every reviewed prediction: the pipeline's gate promotes it; the SDK and the page show the decision."""
    deployment = client.create_deployment("gated", world.champion, kind="monitoring_only")
    deployment.set_shadow_model(world.other_version)
    deployment.setup_continuous_deployment("shadow_then_promote", active=True)
    images = digit_images()
    indices = range(1500, 1500 + GATE_PAIRS)
    logged = [
        deployment.monitor(
            png(images[index]),
            latency=5.0,
            prediction={
                "type": "classification",
                "classes": [str((int(digit_label(index)) + 1) % 10)],
                "scores": [0.9],
            },
            shadow_prediction=_truth(index) | {"scores": [0.8]},
            shadow_latency=6.0,
        )
        for index in indices
    ]
    eventually(lambda: len(deployment.list_predicted_assets(limit=100)) == GATE_PAIRS, timeout_s=120)
    for prediction_id, index in zip(logged, indices, strict=True):
        deployment.add_review(prediction_id, _truth(index))

    def promoted() -> object:
        return next((d for d in deployment.gate_decisions() if d.decision.outcome == "promoted"), None)

    decision = eventually(promoted, timeout_s=120).decision
    assert (decision.pairs, decision.champion_value, decision.shadow_value) == (GATE_PAIRS, 0.0, 1.0)
    gated = client.get_deployment_by_id(deployment.id)
    assert (gated.champion_model_version_id, gated.shadow_model_version_id) == (
        world.other_version.id,
        world.champion.id,
    )

    page.goto(f"/review/deployments/{deployment.id}/pipeline")
    expect(page.locator("#continuous-deployment")).to_contain_text("shadow then promote")
    # Reviews the gate read after its promotion are the watch's (the previous champion now the shadow).
    row = page.locator("#gate tbody tr", has=page.locator(".badge.on", has_text="promoted"))
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"shadow accuracy 1.000 vs champion 0.000 on {GATE_PAIRS} pairs")
    expect(row.locator("td").nth(2)).to_have_text("digits-classifier 1")  # the champion it compared
    page.locator("#gate").screenshot(path=screenshots / "11-promotion-gate.png")
