"""The reference trainer on scikit-learn's digits: what fine-tuning on reviewed feedback buys, and what it
costs against a baseline fit in the same process.

The base model is the demo's digits MLP (trained on three quarters of the clean digits). Production then
brings shifted digits (rotated 10-20 degrees and darkened): the feedback alias holds reviewed shifted
digits of the training part, the test alias the shifted held-out quarter. The trainer runs as the job
runner runs it (`python -m cvloop.trainers.classification` in a workspace folder); printed:

1. accuracy before and after on the held-out shifted digits (metrics.json), and on the held-out clean
   digits (the output model through onnxruntime: what fine-tuning costs on the old data);
2. time: the trainer's whole run (subprocess: start-up, decoding, preprocessing, training, writing) and
   its training alone, each as a ratio against scikit-learn's MLPClassifier fitting the same network,
   with the same optimizer, epochs and batches, on the same tensors (from scratch, so its accuracy is
   printed too). Medians of --repeats runs;
3. a small feedback set with nothing new in it (the retraining loop's test case), with a few settings;
4. the quantization processing on the fine-tuned model: its size and top-1 agreement on held-out digits.

    .venv/bin/python -m bench.trainer [--feedback 600] [--epochs 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from cvloop.demo.digits import (
    TrainedModel,
    digit_images,
    digit_label,
    digit_png,
    split_indices,
    train_linear_classifier,
    train_mlp_classifier,
)
from cvloop.demo.trainer_workspace import Asset, build_workspace, reviewed, shifted_digits_datasets
from cvloop.trainers import dense
from cvloop.trainers.classification import TrainingParameters, load_examples
from cvloop.trainers.weight_quantization import quantize_weights
from cvloop.trainers.workspace import Workspace
from schemas.job_workspace import JobWorkspace
from schemas.model_version import MODEL_FILE
from services.common.domain.images import decode_image
from services.common.domain.onnx_graphs import read_dense_classifier

REPO_ROOT = Path(__file__).resolve().parent.parent


def clean_held_out(base: TrainedModel) -> dict[str, list[Asset]]:
    """The held-out quarter as it was before the shift, reviewed."""
    images, targets = digit_images(), load_digits().target
    _, held_out = split_indices()
    return {"clean": [Asset(images[i], reviewed(base.labels[targets[i]])) for i in held_out]}


def small_feedback_without_shift(folder: Path) -> None:
    """The retraining loop's own case: the linear demo model, 20 reviewed held-out digits rendered as the
    demo renders them (nothing new to learn) as feedback, the next 200 as test; a few settings."""
    base = train_linear_classifier()
    _, held_out = split_indices()
    clean = [
        Asset(decode_image(digit_png(int(i)), 1 << 20).pixels, reviewed(digit_label(int(i))))
        for i in held_out[:220]
    ]
    settings = [{}, {"learning_rate": 0.003}, {"learning_rate": 0.003, "l2_to_base": 1.0}]
    for n, parameters in enumerate(settings):
        workspace = build_workspace(
            folder / f"small-{n}", base, parameters, {"feedback": clean[:20], "test": clean[20:220]}
        )
        run_trainer(workspace)
        metrics = json.loads(JobWorkspace(workspace).metrics_file.read_text())
        print(
            f"small feedback without shift, {parameters or 'defaults'}: accuracy before "
            f"{metrics['accuracy_before']:.4f}, after {metrics['accuracy_after']:.4f}"
        )


def run_trainer(workspace: Path) -> float:
    env = os.environ | {"CVLOOP_JOB_DIR": str(workspace)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cvloop.trainers.classification"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def onnx_top1(model: bytes, x: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (scores,) = session.run(["scores"], {"image": x.reshape(len(x), *input_shape)})
    return scores.argmax(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feedback", type=int, default=600, help="reviewed shifted digits to fine-tune on")
    defaults = TrainingParameters()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--l2-to-base", type=float, default=defaults.l2_to_base)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    parameters = TrainingParameters(
        epochs=args.epochs, learning_rate=args.learning_rate, l2_to_base=args.l2_to_base
    ).model_dump()

    base = train_mlp_classifier()
    with tempfile.TemporaryDirectory(prefix="cvloop-bench-trainer-") as folder:
        workspace = build_workspace(
            Path(folder) / "job", base, parameters, shifted_digits_datasets(base.labels, args.feedback)
        )
        run_seconds = [run_trainer(workspace) for _ in range(args.repeats)]
        metrics = json.loads(JobWorkspace(workspace).metrics_file.read_text())
        tuned = (JobWorkspace(workspace).outputs / MODEL_FILE).read_bytes()
        small_feedback_without_shift(Path(folder))
        clean_at = build_workspace(Path(folder) / "clean", base, parameters, clean_held_out(base))

        # The tensors the trainer trains on and is scored on, for the in-process comparisons.
        model = read_dense_classifier(base.onnx)
        loaded = {
            alias: load_examples(Workspace(at), [alias], base.io, base.labels)
            for at, alias in ((workspace, "feedback"), (workspace, "test"), (clean_at, "clean"))
        }
    feedback, test, clean = loaded["feedback"], loaded["test"], loaded["clean"]

    def fit_trainer() -> dense.Layers:
        layers, optimizer = model.layers, dense.Adam(parameters["learning_rate"])
        rng = np.random.default_rng(parameters["seed"])
        for _ in range(args.epochs):
            layers, _ = dense.train_epoch(
                layers,
                feedback.x,
                feedback.y,
                optimizer,
                parameters["batch_size"],
                rng,
                model.layers,
                args.l2_to_base,
            )
        return layers

    def fit_sklearn() -> MLPClassifier:
        baseline = MLPClassifier(
            hidden_layer_sizes=(model.layers[0][0].shape[1],),
            solver="adam",
            learning_rate_init=parameters["learning_rate"],
            batch_size=parameters["batch_size"],
            alpha=0.0,  # no L2 penalty, as the trainer by default
            max_iter=args.epochs,
            random_state=0,
            n_iter_no_change=args.epochs + 1,  # run every epoch, as the trainer does
        )
        with warnings.catch_warnings(category=ConvergenceWarning, action="ignore"):
            return baseline.fit(feedback.x, feedback.y)

    trainer_fit_seconds, sklearn_fit_seconds = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        started = time.perf_counter()
        fit_trainer()
        trainer_fit_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        baseline = fit_sklearn()
        sklearn_fit_seconds.append(time.perf_counter() - started)

    run_s, fit_s, sklearn_s = (
        statistics.median(t) for t in (run_seconds, trainer_fit_seconds, sklearn_fit_seconds)
    )
    shape = model.input_shape
    print(
        f"feedback: {len(feedback.y)} reviewed shifted digits; "
        f"held out: {len(test.y)} shifted, {len(clean.y)} clean"
    )
    print(f"parameters: {parameters}; network {[w.shape for w, _ in model.layers]}")
    print(
        f"held-out shifted digits: accuracy before {metrics['accuracy_before']:.4f}, "
        f"after {metrics['accuracy_after']:.4f}"
    )
    clean_before, clean_after = (np.mean(onnx_top1(m, clean.x, shape) == clean.y) for m in (base.onnx, tuned))
    print(f"held-out clean digits:   accuracy before {clean_before:.4f}, after {clean_after:.4f}")
    print(
        "scikit-learn MLP fitted from scratch on the feedback alone: "
        f"shifted {baseline.score(test.x, test.y):.4f}, "
        f"clean {baseline.score(clean.x, clean.y):.4f}"
    )
    print(f"trainer run (subprocess, whole job): {run_s:.3f} s = {run_s / sklearn_s:.2f}x scikit-learn's fit")
    print(f"trainer training alone (in process): {fit_s:.3f} s = {fit_s / sklearn_s:.2f}x scikit-learn's fit")
    print(
        f"scikit-learn MLPClassifier.fit, same network and batches, {baseline.n_iter_} epochs: "
        f"{sklearn_s:.3f} s (baseline)"
    )

    quantized = quantize_weights(tuned).onnx
    held_out = np.concatenate([test.x, clean.x])
    same = np.mean(onnx_top1(quantized, held_out, shape) == onnx_top1(tuned, held_out, shape))
    print(
        f"quantize processing on the fine-tuned model: {len(tuned)} -> {len(quantized)} bytes, "
        f"same top-1 on {same:.4f} of the {len(held_out)} held-out digits"
    )


if __name__ == "__main__":
    main()
