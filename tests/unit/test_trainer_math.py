"""The reference trainer's pure parts: backpropagation against numerical gradients, Adam lowering the loss,
the ONNX round trip (numpy forward pass == onnxruntime on the written graph), reading graphs back, and
the checks of its inputs."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import numpy as np
import onnxruntime
import pytest
from pydantic import ValidationError

from cvloop.demo.digits import DIGITS_IO, box_detector_model, train_linear_classifier
from cvloop.trainers import dense
from cvloop.trainers.classification import (
    TrainingParameters,
    check_compatible,
    label_of,
    unknown_labels_message,
)
from cvloop.trainers.workspace import JobInputError, describe
from schemas.model_io import ModelIO
from schemas.predictions import ClassificationPrediction, DetectionPrediction
from services.common.domain.onnx_graphs import UnsupportedGraph, dense_classifier, read_dense_classifier


def tiny_net(rng: np.random.Generator, sizes: list[int], dtype: type = np.float64) -> dense.Layers:
    return [
        (rng.normal(0, 0.5, (n_in, n_out)).astype(dtype), rng.normal(0, 0.1, n_out).astype(dtype))
        for n_in, n_out in pairwise(sizes)
    ]


def test_backpropagation_matches_numerical_gradients() -> None:
    rng = np.random.default_rng(3)
    layers, anchor = tiny_net(rng, [5, 4, 3, 3]), tiny_net(rng, [5, 4, 3, 3])  # two Relu layers
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    _, grads = dense.loss_and_gradients(layers, x, y, anchor, l2=0.1)
    step = 1e-6
    for n, layer in enumerate(layers):
        for p, parameter in enumerate(layer):
            numerical = np.zeros_like(parameter)
            for index in np.ndindex(parameter.shape):
                original = parameter[index]
                parameter[index] = original + step
                above, _ = dense.loss_and_gradients(layers, x, y, anchor, l2=0.1)
                parameter[index] = original - step
                below, _ = dense.loss_and_gradients(layers, x, y, anchor, l2=0.1)
                parameter[index] = original
                numerical[index] = (above - below) / (2 * step)
            np.testing.assert_allclose(grads[n][p], numerical, rtol=1e-5, atol=1e-8)


def test_adam_epochs_lower_the_loss_and_fit_the_data() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 6))
    y = rng.integers(0, 3, 300)
    x = (centres[y] + rng.normal(0, 1, (300, 6))).astype(np.float32)
    layers = tiny_net(rng, [6, 8, 3], np.float32)
    initial, _ = dense.loss_and_gradients(layers, x, y)
    optimizer = dense.Adam(0.01)
    losses = []
    for _ in range(15):
        layers, epoch_loss = dense.train_epoch(layers, x, y, optimizer, 32, rng)
        losses.append(epoch_loss)
    final, _ = dense.loss_and_gradients(layers, x, y)
    assert final < initial / 4
    assert losses[-1] < losses[0]
    assert dense.accuracy(layers, x, y) > 0.95
    assert all(w.dtype == np.float32 and b.dtype == np.float32 for w, b in layers)


def test_the_l2_penalty_pulls_the_weights_towards_the_anchor() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 2, 64)
    start = tiny_net(rng, [4, 2], np.float32)

    def trained(anchor: dense.Layers | None, l2: float) -> dense.Array:
        layers, optimizer, order = start, dense.Adam(0.05), np.random.default_rng(0)
        for _ in range(30):
            layers, _ = dense.train_epoch(layers, x, y, optimizer, 16, order, anchor, l2)
        return layers[0][0]

    free = trained(None, 0.0)
    assert np.sum(trained(None, 0.5) ** 2) < np.sum(free**2)  # no anchor: weight decay towards 0
    assert np.sum((trained(start, 0.5) - start[0][0]) ** 2) < np.sum((free - start[0][0]) ** 2)


@pytest.mark.parametrize("softmax", [True, False])
def test_onnx_round_trip_gives_the_numpy_forward_pass(softmax: bool) -> None:
    rng = np.random.default_rng(2)
    layers = tiny_net(rng, [2 * 4 * 3, 16, 8, 5], np.float32)
    onnx_bytes = dense_classifier(layers, (2, 4, 3), softmax=softmax)

    read = read_dense_classifier(onnx_bytes)
    assert read.input_shape == (2, 4, 3) and read.softmax == softmax
    for (w, b), (w_read, b_read) in zip(layers, read.layers, strict=True):
        np.testing.assert_array_equal(w, w_read)
        np.testing.assert_array_equal(b, b_read)

    images = rng.normal(size=(9, 2, 4, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (scores,) = session.run(["scores"], {"image": images})
    z = dense.logits(read.layers, images.reshape(9, -1))
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected = expected / expected.sum(axis=1, keepdims=True) if softmax else z
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_graphs_other_than_dense_classifiers_are_refused_with_the_reason() -> None:
    with pytest.raises(UnsupportedGraph, match="1 inputs and 3 outputs"):
        read_dense_classifier(box_detector_model().onnx)
    with pytest.raises(UnsupportedGraph, match="not an ONNX model"):
        read_dense_classifier(b"not a model")


def test_the_annotated_label_is_the_best_scored_class() -> None:
    annotation = ClassificationPrediction(classes=["3", "8"], scores=[0.2, 0.8])
    assert label_of("a1", annotation) == "8"
    assert label_of("a1", None) is None
    assert label_of("a1", ClassificationPrediction(classes=[], scores=[])) is None
    with pytest.raises(JobInputError, match="asset a2 has a detection annotation"):
        label_of("a2", DetectionPrediction(classes=["3"], scores=[1.0], boxes=[(0, 0, 1, 1)]))


def test_labels_outside_the_labelmap_are_named() -> None:
    message = unknown_labels_message(Counter({"cat": 2, "dog": 1}), {"cat": "a1", "dog": "a7"})
    assert message.startswith("3 assets have labels outside the base model's labelmap")
    assert "'cat' (2 assets, e.g. a1), 'dog' (1 assets, e.g. a7)" in message


def test_model_and_io_must_agree() -> None:
    model = read_dense_classifier(train_linear_classifier().onnx)
    check_compatible(model, DIGITS_IO, [str(d) for d in range(10)])
    with pytest.raises(JobInputError, match=r"takes images of shape \(1, 8, 8\); io makes \(3, 8, 8\)"):
        check_compatible(model, ModelIO(width=8, height=8, color="rgb"), [str(d) for d in range(10)])
    with pytest.raises(JobInputError, match="scores 10 classes but the labelmap has 2 labels"):
        check_compatible(model, DIGITS_IO, ["a", "b"])
    with pytest.raises(JobInputError, match="NHWC"):
        check_compatible(model, ModelIO(width=8, height=8, color="gray", layout="NHWC"), ["a"])


def test_bad_parameters_are_named_with_the_value_given() -> None:
    with pytest.raises(ValidationError) as caught:
        TrainingParameters.model_validate({"learning_rate": -1, "epochs": 3, "batch_sise": 8})
    message = describe(caught.value)
    assert "learning_rate: Input should be greater than 0 (got -1)" in message
    assert "batch_sise: Extra inputs are not permitted" in message
    assert TrainingParameters.model_validate({"epochs": "5"}).epochs == 5
