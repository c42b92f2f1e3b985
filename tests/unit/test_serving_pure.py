"""Serving's pure logic: preprocessing, postprocessing, agreement, model leases, Triton configs."""

from __future__ import annotations

import json
from uuid import UUID

import numpy as np
import onnxruntime
import pytest

from cvloop.demo.digits import DETECTOR_IO, box_detector_model, train_linear_classifier
from schemas.model_io import ModelIO
from schemas.predictions import ClassificationPrediction, DetectionPrediction, DetectionType
from schemas.vocabulary import OutputFormat
from services.common.domain.agreement import agreement, box_agreement, iou
from services.common.domain.model_signature import Unservable, check_servable, onnx_file, read_signature
from services.common.domain.onnx_graphs import dense_classifier
from services.common.domain.preprocess import placement, preprocess
from services.common.domain.registry import ModelFile
from services.serving.model_config import triton_config, triton_files, triton_model_name
from services.serving.postprocess import OutputError, Reading, classification, to_prediction
from services.serving.routing import ModelLeases

PIXELS = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)  # height 4, width 6


def test_preprocess_nchw_float_normalised() -> None:
    io = ModelIO(width=6, height=4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    tensor = preprocess(PIXELS, io)
    assert tensor.shape == (1, 3, 4, 6) and tensor.dtype == np.float32
    expected = (PIXELS.astype(np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(tensor[0], expected.transpose(2, 0, 1), rtol=1e-6)


def test_preprocess_nhwc_uint8_bgr_and_resize() -> None:
    tensor = preprocess(PIXELS, ModelIO(width=3, height=2, layout="NHWC", color="bgr", dtype="uint8"))
    assert tensor.shape == (1, 2, 3, 3) and tensor.dtype == np.uint8
    same_size = preprocess(PIXELS, ModelIO(width=6, height=4, layout="NHWC", color="bgr", dtype="uint8"))
    np.testing.assert_array_equal(same_size[0], PIXELS[:, :, ::-1])


def test_preprocess_gray_uses_luma() -> None:
    white = np.full((8, 8, 3), 255, np.uint8)
    tensor = preprocess(white, ModelIO(width=8, height=8, color="gray"))
    assert tensor.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(tensor, 1.0)


def test_classification_sorted_best_first_and_softmax_of_logits() -> None:
    prediction = classification(np.array([[0.0, 2.0, 1.0]]), True, ["a", "b", "c"])
    assert prediction.classes == ["b", "c", "a"]
    assert sum(prediction.scores) == pytest.approx(1.0)
    assert prediction.scores[0] == pytest.approx(np.exp(2) / (1 + np.exp(1) + np.exp(2)))


def test_classification_refuses_a_labelmap_of_another_size() -> None:
    with pytest.raises(OutputError, match="3 classes but the labelmap has 2"):
        classification(np.array([[0.2, 0.3, 0.5]]), False, ["a", "b"])


def _reading(io: ModelIO, labels: list[str], image_size: tuple[int, int], threshold: float = 0.0) -> Reading:
    return Reading(
        detection_type=DetectionType.DETECTION,
        output_format=io.format_for(DetectionType.DETECTION),
        io=io,
        labels=labels,
        placement=placement(*image_size, io),
        threshold=threshold,
        max_polygon_points=100,
    )


def test_detection_normalised_boxes_in_image_pixels_clipped() -> None:
    prediction = to_prediction(
        [
            np.array([[[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 1.2, 1.0]]]),
            np.array([[0.9, 1.0000001]]),
            np.array([[1, 0]]),
        ],
        _reading(DETECTOR_IO, ["cat", "dog"], (200, 100)),
    )
    assert prediction.classes == ["dog", "cat"]
    assert prediction.scores == [pytest.approx(0.9), 1.0]
    np.testing.assert_allclose(prediction.boxes, [[20, 20, 100, 60], [100, 50, 200, 100]])


def test_detection_in_input_pixels_and_bad_class_index() -> None:
    io = ModelIO(width=50, height=50, box_format="xyxy_input_pixels")
    prediction = to_prediction(
        [np.array([[10, 10, 20, 30]]), np.array([0.5]), np.array([0.0])], _reading(io, ["x"], (100, 200))
    )
    np.testing.assert_allclose(prediction.boxes, [[20, 40, 40, 120]])
    with pytest.raises(OutputError, match="class index 3"):
        to_prediction(
            [np.array([[0, 0, 1, 1]]), np.array([0.5]), np.array([3])], _reading(io, ["x"], (10, 10))
        )


def test_threshold_applies_to_shapes_only() -> None:
    tensors = [np.array([[[0, 0, 0.5, 0.5], [0, 0, 1, 1]]]), np.array([[0.8, 0.3]]), np.array([[0, 0]])]
    io = ModelIO(width=4, height=4)
    kept = to_prediction(tensors, _reading(io, ["x"], (10, 10))).above_threshold(0.5)
    assert kept.scores == [0.8] and kept.boxes == [(0.0, 0.0, 5.0, 5.0)]
    every = ClassificationPrediction(classes=["a", "b"], scores=[0.9, 0.1])
    assert every.above_threshold(0.5) == every


def test_agreement() -> None:
    cat = ClassificationPrediction(classes=["cat", "dog"], scores=[0.7, 0.3])
    dog = ClassificationPrediction(classes=["cat", "dog"], scores=[0.4, 0.6])
    assert agreement(cat, cat) == 1.0 and agreement(cat, dog) == 0.0
    boxes = DetectionPrediction(
        boxes=[(0, 0, 10, 10), (20, 20, 30, 30)], classes=["a", "b"], scores=[0.9, 0.8]
    )
    shifted = DetectionPrediction(boxes=[(0, 0, 10, 5)], classes=["a"], scores=[0.9])
    assert iou((0, 0, 10, 10), (0, 0, 10, 5)) == pytest.approx(0.5)
    assert box_agreement(boxes, shifted) == pytest.approx(0.5 / 2)  # one box of two matched at IoU 0.5
    other_class = DetectionPrediction(boxes=[(0, 0, 10, 10)], classes=["b"], scores=[0.9])
    assert box_agreement(shifted, other_class) == 0.0
    empty = DetectionPrediction(boxes=[], classes=[], scores=[])
    assert agreement(empty, empty) == 1.0


def test_leases_unload_retired_models_after_their_last_request() -> None:
    leases = ModelLeases()
    leases.acquire(["old", "shared"])
    assert leases.retire(["old", "shared", "idle"], still_needed={"shared"}) == ["idle"]
    assert leases.release(["old", "shared"]) == ["old"]
    leases.acquire(["back"])
    leases.retire(["back"], still_needed=set())
    leases.retire([], still_needed={"back"})  # routed again before its request ended: it stays
    assert leases.release(["back"]) == []


def test_signature_and_config_from_the_graph() -> None:
    model = box_detector_model()
    signature = read_signature(model.onnx)
    assert [(i.name, i.datatype, i.shape) for i in signature.inputs] == [("image", "FP32", (-1, 3, 32, 32))]
    assert [(o.name, o.datatype) for o in signature.outputs] == [
        ("boxes", "FP32"),
        ("scores", "FP32"),
        ("classes", "INT64"),
    ]
    name = triton_model_name(UUID(int=7))
    python = json.loads(triton_config(name, signature, "python"))
    assert python["backend"] == "python" and python["name"] == name
    assert python["output"][2] == {"name": "classes", "data_type": "TYPE_INT64", "dims": [-1, 3]}
    assert set(triton_files(model.onnx, "python")) == {"file:1/model.onnx", "file:1/model.py"}
    onnx_backend = json.loads(triton_config(name, signature, "onnxruntime"))
    assert onnx_backend["backend"] == "onnxruntime" and "instance_group" not in onnx_backend
    assert set(triton_files(model.onnx, "onnxruntime")) == {"file:1/model.onnx"}
    with pytest.raises(ValueError, match="not an ONNX model"):
        read_signature(b"not onnx")


def test_input_and_outputs_must_match_the_io_settings() -> None:
    signature = read_signature(train_linear_classifier().onnx)
    classification_type = DetectionType.CLASSIFICATION
    servable = check_servable(classification_type, ModelIO(width=8, height=8, color="gray"), signature, 10)
    assert servable.output_format == OutputFormat.SOFTMAX and servable.outputs == ("scores",)
    assert servable.classes == 10

    def refused(io: ModelIO, labels: int | None = 10) -> tuple[str, str]:
        with pytest.raises(Unservable) as caught:
            check_servable(classification_type, io, signature, labels)
        return caught.value.field, str(caught.value)

    field, message = refused(ModelIO(width=8, height=8, color="rgb"))
    assert field == "io.color" and "shape [-1, 1, 8, 8]" in message
    assert refused(ModelIO(width=9, height=8, color="gray"))[0] == "io.width"
    assert refused(ModelIO(width=8, height=8, color="gray", dtype="uint8"))[0] == "io.dtype"
    assert (
        refused(ModelIO(width=8, height=8, color="gray", outputs={"scores": "nope"}))[0]
        == "io.outputs.scores"
    )
    assert refused(ModelIO(width=8, height=8, color="gray"), labels=3)[0] == "labelmap_id"
    wrong_format = ModelIO(width=8, height=8, color="gray", output_format=OutputFormat.YOLO_RAW)
    assert refused(wrong_format)[0] == "io.output_format"


def test_the_onnx_file_of_a_version() -> None:
    def file(name: str) -> ModelFile:
        return ModelFile(name=name, object_key="models/ab/x", sha256="a" * 64, size_bytes=1)

    assert onnx_file([file("labels.txt"), file("net.onnx")]).name == "net.onnx"
    assert onnx_file([file("a.onnx"), file("model.onnx")]).name == "model.onnx"
    with pytest.raises(Unservable, match="one ONNX file"):
        onnx_file([file("a.onnx"), file("b.onnx")])


def test_generated_classifiers_run_and_learnt_the_digits() -> None:
    model = train_linear_classifier()
    assert model.accuracy > 0.9
    session = onnxruntime.InferenceSession(model.onnx)
    scores = session.run(None, {"image": np.zeros((2, 1, 8, 8), np.float32)})[0]
    assert scores.shape == (2, 10)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="first layer takes"):
        dense_classifier([(np.zeros((3, 2), np.float32), np.zeros(2, np.float32))], (1, 8, 8))
