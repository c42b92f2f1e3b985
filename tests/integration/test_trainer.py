"""The reference trainer and the quantization processing run as the job runner runs them: a subprocess in
a job workspace folder (built here from scikit-learn's digits, following the workspace contract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

from cvloop.demo.digits import TrainedModel, box_detector_model, train_linear_classifier, train_mlp_classifier
from cvloop.demo.trainer_workspace import Asset, build_workspace, reviewed, shifted_digits_datasets
from services.common.domain.images import decode_image
from services.common.domain.preprocess import preprocess
from tests.conftest import REPO_ROOT


def run_job(module: str, workspace: Path, kind: str = "training") -> subprocess.CompletedProcess[str]:
    env = os.environ | {"CVLOOP_JOB_DIR": str(workspace), "CVLOOP_JOB_KIND": kind}
    return subprocess.run(
        [sys.executable, "-m", module], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def alias_tensors(workspace: Path, alias: str, model: TrainedModel) -> tuple[np.ndarray, np.ndarray]:
    """The alias's images preprocessed as serving does, and their label indices."""
    images, labels = [], []
    for line in (workspace / "datasets" / alias / "assets.jsonl").read_text().splitlines():
        asset = json.loads(line)
        pixels = decode_image((workspace / "datasets" / alias / asset["file"]).read_bytes(), 1 << 20).pixels
        images.append(preprocess(pixels, model.io)[0])
        labels.append(model.labels.index(asset["annotation"]["classes"][0]))
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def base() -> TrainedModel:
    return train_mlp_classifier()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, base: TrainedModel) -> tuple[Path, str]:
    workspace = build_workspace(
        tmp_path_factory.mktemp("training"),
        base,
        {"epochs": 8, "learning_rate": 0.003, "batch_size": 32, "seed": 1},
        shifted_digits_datasets(base.labels, feedback=400, unlabelled=10),
    )
    finished = run_job("cvloop.trainers.classification", workspace)
    assert finished.returncode == 0, finished.stderr
    return workspace, finished.stderr


def test_fine_tuning_on_feedback_beats_the_base_model_on_held_out_digits(trained: tuple[Path, str]) -> None:
    workspace, _ = trained
    metrics = json.loads((workspace / "outputs" / "metrics.json").read_text())
    assert metrics["accuracy_after"] > metrics["accuracy_before"] + 0.03
    assert metrics["train_assets"] == 400 and metrics["test_assets"] == 450
    assert metrics["unlabelled_assets"] == 10
    assert all(isinstance(value, int | float) for value in metrics.values())


def test_the_output_model_serves_like_the_base_and_scores_what_the_metrics_say(
    trained: tuple[Path, str], base: TrainedModel
) -> None:
    workspace, _ = trained
    metrics = json.loads((workspace / "outputs" / "metrics.json").read_text())
    assert json.loads((workspace / "outputs" / "labels.json").read_text()) == base.labels
    session = onnxruntime.InferenceSession(
        str(workspace / "outputs" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    before = onnxruntime.InferenceSession(base.onnx, providers=["CPUExecutionProvider"])
    signature = [(i.name, i.shape, i.type) for i in session.get_inputs() + session.get_outputs()]
    assert signature == [(i.name, i.shape, i.type) for i in before.get_inputs() + before.get_outputs()]

    images, labels = alias_tensors(workspace, "test", base)
    (scores,) = session.run(["scores"], {"image": images})
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)  # still probabilities
    assert float(np.mean(scores.argmax(axis=1) == labels)) == pytest.approx(
        metrics["accuracy_after"], abs=1e-9
    )
    (base_scores,) = before.run(["scores"], {"image": images})
    assert float(np.mean(base_scores.argmax(axis=1) == labels)) == pytest.approx(
        metrics["accuracy_before"], abs=1e-9
    )


def test_progress_is_logged_one_json_line_per_epoch(trained: tuple[Path, str]) -> None:
    _, stderr = trained
    entries = [json.loads(line) for line in stderr.splitlines()]
    epochs = [entry for entry in entries if entry["msg"] == "epoch"]
    assert [entry["epoch"] for entry in epochs] == list(range(1, 9))
    assert all({"loss", "train_accuracy", "test_accuracy"} <= entry.keys() for entry in epochs)
    assert epochs[-1]["loss"] < epochs[0]["loss"]


def failure(tmp_path: Path, base: TrainedModel, parameters: dict[str, Any], datasets: dict[str, Any]) -> str:
    """Run the trainer where it must fail; its last stderr line (the runner's failure reason)."""
    finished = run_job(
        "cvloop.trainers.classification", build_workspace(tmp_path, base, parameters, datasets)
    )
    assert finished.returncode == 1
    assert not (tmp_path / "outputs" / "model.onnx").exists()
    return finished.stderr.strip().splitlines()[-1]


def one_digit(label: str) -> list[Asset]:
    pixels = np.zeros((32, 32, 3), np.uint8)
    return [Asset(pixels, reviewed(label))]


def test_a_bad_parameter_fails_the_run_naming_it(tmp_path: Path) -> None:
    model = train_linear_classifier()
    reason = failure(tmp_path, model, {"learning_rate": 0, "epochs": 2}, {"feedback": one_digit("1")})
    assert reason.startswith(
        "training failed: parameters.json: learning_rate: Input should be greater than 0"
    )


def test_labels_outside_the_labelmap_fail_the_run_naming_them(tmp_path: Path) -> None:
    model = train_linear_classifier()
    reason = failure(
        tmp_path, model, {}, {"feedback": one_digit("1") + one_digit("seven") + one_digit("seven")}
    )
    assert "2 assets have labels outside the base model's labelmap: 'seven' (2 assets" in reason


def test_a_base_model_that_is_not_a_dense_classifier_fails_the_run(tmp_path: Path) -> None:
    detector = box_detector_model()
    classifier_like = TrainedModel(detector.onnx, detector.io, [str(d) for d in range(10)], detector.accuracy)
    reason = failure(tmp_path, classifier_like, {}, {"feedback": one_digit("1")})
    assert reason.startswith("training failed: base_model/model.onnx: 1 inputs and 3 outputs")


def test_a_base_model_version_without_labelmap_fails_the_run(tmp_path: Path) -> None:
    workspace = build_workspace(tmp_path, train_linear_classifier(), {}, {"feedback": one_digit("1")})
    described = workspace / "base_model" / "model_version.json"
    described.write_text(json.dumps(json.loads(described.read_text()) | {"labels": None}))
    finished = run_job("cvloop.trainers.classification", workspace)
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines()[-1] == (
        "training failed: the base model version has no labelmap: nothing names the classes it scores"
    )


def test_nothing_annotated_to_train_on_fails_the_run(tmp_path: Path) -> None:
    model = train_linear_classifier()
    reason = failure(tmp_path, model, {}, {"test": one_digit("1")})
    assert reason == "training failed: no annotated assets to train on in the aliases []"


def test_the_quantization_processing_writes_a_smaller_model_that_predicts_alike(
    trained: tuple[Path, str], base: TrainedModel, tmp_path: Path
) -> None:
    training_workspace, _ = trained
    workspace = build_workspace(tmp_path, base, {"per_channel": True}, {})
    finished = run_job("cvloop.trainers.quantize", workspace, "processing")
    assert finished.returncode == 0, finished.stderr
    metrics = json.loads((workspace / "outputs" / "metrics.json").read_text())
    assert metrics["tensors_quantized"] == 2
    assert metrics["size_after_bytes"] == (workspace / "outputs" / "model.onnx").stat().st_size
    assert metrics["size_after_bytes"] < metrics["size_before_bytes"] / 2.5

    images, _ = alias_tensors(training_workspace, "test", base)
    converted = onnxruntime.InferenceSession(
        str(workspace / "outputs" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    original = onnxruntime.InferenceSession(base.onnx, providers=["CPUExecutionProvider"])
    (after,), (before,) = (
        converted.run(["scores"], {"image": images}),
        original.run(["scores"], {"image": images}),
    )
    assert np.mean(after.argmax(axis=1) == before.argmax(axis=1)) >= 0.98
    assert np.abs(after - before).max() < 0.1


def test_quantizing_a_model_without_weight_matrices_fails_the_run(tmp_path: Path) -> None:
    workspace = build_workspace(tmp_path, box_detector_model(), {}, {})
    finished = run_job("cvloop.trainers.quantize", workspace, "processing")
    assert finished.returncode == 1
    reason = finished.stderr.strip().splitlines()[-1]
    assert reason.startswith("quantization failed: base_model/model.onnx has no weight matrix")
    assert not (workspace / "outputs").exists()
