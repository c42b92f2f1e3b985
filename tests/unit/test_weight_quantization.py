"""Weight-only int8 quantization: the converted model is valid ONNX, smaller, and predicts like the
original through onnxruntime on real digits; weights of other operators and small tensors stay float."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits

from cvloop.demo.digits import box_detector_model, split_indices, train_mlp_classifier
from cvloop.trainers.weight_quantization import QuantizationError, quantize_weights


def run(model: bytes, images: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images})


def held_out_digits() -> np.ndarray:
    _, held_out = split_indices()
    return (load_digits().images[held_out] / 16.0).astype(np.float32)[:, np.newaxis]


@pytest.mark.parametrize("per_channel", [True, False])
def test_a_quantized_classifier_is_smaller_and_predicts_like_the_original(per_channel: bool) -> None:
    original = train_mlp_classifier().onnx
    converted = quantize_weights(original, per_channel=per_channel)
    onnx.checker.check_model(onnx.load_from_string(converted.onnx), full_check=True)
    assert converted.tensors == ["w0", "w1"]
    assert len(converted.onnx) < len(original) / 2.5
    images = held_out_digits()
    (before,), (after,) = run(original, images), run(converted.onnx, images)
    assert np.abs(after - before).max() < 0.05
    assert np.mean(after.argmax(axis=1) == before.argmax(axis=1)) >= 0.99


def test_conv_and_matmul_weights_are_quantized_per_output_channel() -> None:
    rng = np.random.default_rng(0)
    conv, dense = (
        rng.normal(size=(4, 1, 3, 3)).astype(np.float32),
        rng.normal(size=(144, 5)).astype(np.float32),
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "conv_w"], ["features"]),
            helper.make_node("Flatten", ["features"], ["flat"]),
            helper.make_node("MatMul", ["flat", "dense_w"], ["scores"]),
        ],
        "conv_net",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 5])],
        [numpy_helper.from_array(conv, "conv_w"), numpy_helper.from_array(dense, "dense_w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    converted = quantize_weights(model.SerializeToString())
    assert converted.tensors == ["conv_w", "dense_w"]
    scales = {
        t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(converted.onnx).graph.initializer
    }
    assert scales["conv_w_scale"].shape == (4,) and scales["dense_w_scale"].shape == (5,)
    images = rng.random((6, 1, 8, 8)).astype(np.float32)
    (before,), (after,) = run(model.SerializeToString(), images), run(converted.onnx, images)
    np.testing.assert_allclose(after, before, rtol=0.05, atol=0.05 * np.abs(before).max())


def test_tensors_that_are_no_weight_matrix_stay_float() -> None:
    original = box_detector_model().onnx
    converted = quantize_weights(original)
    assert converted.tensors == []
    image = np.full((1, 3, 32, 32), 0.5, np.float32)
    for before, after in zip(run(original, image), run(converted.onnx, image), strict=True):
        np.testing.assert_array_equal(before, after)
    assert quantize_weights(train_mlp_classifier().onnx, min_elements=1000).tensors == [
        "w0"
    ]  # w1: 320 values


def test_per_channel_needs_opset_13_and_garbage_is_refused() -> None:
    model = onnx.load_from_string(train_mlp_classifier().onnx)
    model.opset_import[0].version = 11
    with pytest.raises(QuantizationError, match="per-channel scales need opset 13; the model has 11"):
        quantize_weights(model.SerializeToString())
    with pytest.raises(QuantizationError, match="not an ONNX model"):
        quantize_weights(b"\x00garbage")
