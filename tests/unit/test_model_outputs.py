"""The output formats of the model families people deploy (schemas.vocabulary.OutputFormat), read by
serving's postprocessing, against references written here box by box; the preprocessing's placement of
an image in the model's input, and the servability check of each format."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.model_io import ModelIO
from schemas.predictions import DetectionType, SegmentationPrediction
from schemas.vocabulary import OutputFormat, Resize
from services.common.domain.model_signature import Signature, TensorSpec, Unservable, check_servable
from services.common.domain.polygons import mask_polygon
from services.common.domain.preprocess import placement, prepare
from services.serving.postprocess import Reading, to_prediction
from tests import detection_reference as reference

RNG_SEED = 17
BOX_TOLERANCE_PX = 1e-6  # the same float64 arithmetic in a different order
LETTERBOX_TOLERANCE_PX = 1.0  # a box drawn on the original comes back within a pixel (bilinear edges)


def _reading(
    io: ModelIO,
    labels: int,
    size: tuple[int, int],
    threshold: float = 0.25,
    detection_type: DetectionType = DetectionType.DETECTION,
) -> Reading:
    return Reading(
        detection_type=detection_type,
        output_format=io.format_for(detection_type),
        io=io,
        labels=[f"c{i}" for i in range(labels)],
        placement=placement(*size, io),
        threshold=threshold,
        max_polygon_points=400,
    )


def _yolo_rows(
    rng: np.random.Generator, classes: int, anchors: int, extra: int = 0, size: int = 64
) -> np.ndarray:
    """Features-first rows with clustered boxes, so NMS has overlaps to suppress."""
    centres = rng.uniform(8, size - 8, (2, 6))
    which = rng.integers(0, 6, anchors)
    xy = centres[:, which] + rng.normal(0, 1.5, (2, anchors))
    wh = rng.uniform(6, 20, (2, anchors))
    scores = rng.uniform(0, 1, (classes, anchors)) ** 3
    return np.concatenate([xy, wh, scores, rng.normal(0, 1, (extra, anchors))]).astype(np.float32)


@pytest.mark.parametrize("resize", [Resize.LETTERBOX, Resize.STRETCH])
def test_yolo_v8_decode_and_class_aware_nms_equal_the_box_by_box_reference(resize: Resize) -> None:
    rng = np.random.default_rng(RNG_SEED)
    classes, anchors, size = 5, 400, (96, 48)
    io = ModelIO(width=64, height=64, resize=resize, output_format=OutputFormat.YOLO_RAW, iou_threshold=0.5)
    rows = _yolo_rows(rng, classes, anchors)
    prediction = to_prediction([rows[np.newaxis]], _reading(io, classes, size))
    expected = reference.yolo(rows, classes, False, 0.25, io.iou_threshold, io.max_detections)
    assert len(expected) > 10 and len(prediction.boxes) == len(expected)
    assert prediction.classes == [f"c{d.cls}" for d in expected]
    np.testing.assert_allclose(prediction.scores, [d.score for d in expected], atol=1e-6)
    if resize == Resize.LETTERBOX:
        boxes = [reference.Letterbox(*size, 64).box_to_original(d.box) for d in expected]
    else:
        stretch = np.array([96 / 64, 48 / 64, 96 / 64, 48 / 64])
        boxes = [np.clip(d.box * stretch, 0, [96, 48, 96, 48]) for d in expected]
    np.testing.assert_allclose(prediction.boxes, boxes, atol=BOX_TOLERANCE_PX)


def test_yolo_v5_anchors_first_with_objectness_and_max_detections() -> None:
    rng = np.random.default_rng(RNG_SEED + 1)
    classes, anchors = 3, 300
    features = _yolo_rows(rng, classes + 1, anchors)  # the first score row serves as the objectness
    io = ModelIO(width=64, height=64, output_format=OutputFormat.YOLO_RAW, max_detections=7)
    prediction = to_prediction([features.T[np.newaxis]], _reading(io, classes, (64, 64), threshold=0.05))
    expected = reference.yolo(features, classes, True, 0.05, io.iou_threshold, io.max_detections)
    assert len(expected) == len(prediction.boxes) == 7
    np.testing.assert_allclose(prediction.boxes, [d.box for d in expected], atol=BOX_TOLERANCE_PX)
    assert prediction.classes == [f"c{d.cls}" for d in expected]


def test_nms_free_rows_in_input_pixels_thresholded() -> None:
    rows = np.array([[[4, 8, 20, 30, 0.9, 1], [0, 0, 10, 10, 0.1, 0], [10, 10, 60, 60, 0.5, 0]]], np.float32)
    io = ModelIO(width=64, height=64, output_format=OutputFormat.NMS_FREE)
    prediction = to_prediction([rows], _reading(io, 2, (128, 128), threshold=0.3))
    assert prediction.classes == ["c1", "c0"]
    np.testing.assert_allclose(prediction.boxes, [[8, 16, 40, 60], [20, 20, 120, 120]])


def _disc(height: int, width: int, cx: float, cy: float, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[:height, :width]
    return (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= radius**2


def test_torchvision_boxes_and_masks_become_polygons_in_original_pixels() -> None:
    io = ModelIO(width=64, height=64, resize=Resize.LETTERBOX, output_format=OutputFormat.TORCHVISION)
    masks = np.stack([_disc(64, 64, 32, 32, 12), _disc(64, 64, 20, 20, 5)])[:, np.newaxis].astype(np.float32)
    tensors = [
        np.array([[20, 20, 44, 44], [15, 15, 25, 25]], np.float32),
        np.array([2, 1], np.int64),
        np.array([0.95, 0.1], np.float32),
        masks * 0.9,
    ]
    reading = _reading(io, 3, (128, 64), threshold=0.5, detection_type=DetectionType.SEGMENTATION)
    prediction = to_prediction(tensors, reading)
    assert isinstance(prediction, SegmentationPrediction)
    assert prediction.classes == ["c2"] and prediction.scores == [pytest.approx(0.95)]
    # The letterbox scales 128x64 by 0.5 and pads 16 rows above: the disc is centred at (64, 32), radius 24.
    expected = _disc(64, 128, 64, 32, 24)
    assert reference.mask_iou(reference.rasterised(prediction.polygons[0], 128, 64), expected) > 0.9


def test_yolo_seg_masks_from_coefficients_and_prototypes() -> None:
    rng = np.random.default_rng(RNG_SEED + 2)
    classes, coefficients, anchors = 2, 4, 50
    io = ModelIO(width=64, height=64, output_format=OutputFormat.YOLO_SEG)
    rows = np.zeros((4 + classes + coefficients, anchors), np.float32)
    rows[:4] = [[16], [16], [20], [20]]  # every anchor the same box: NMS keeps the best one
    rows[4] = rng.uniform(0, 0.5, anchors)
    rows[4, 7] = 0.9
    protos = np.stack(
        [_disc(16, 16, 4, 4, 3), _disc(16, 16, 12, 12, 3), np.ones((16, 16)), np.zeros((16, 16))]
    )
    rows[6:, 7] = [8.0, 0.0, -4.0, 0.0]  # the first prototype's disc, sharpened: logits +4 inside, -4 out
    prototypes = protos[np.newaxis].astype(np.float32)
    reading = _reading(io, classes, (64, 64), threshold=0.3, detection_type=DetectionType.SEGMENTATION)
    prediction = to_prediction([rows[np.newaxis], prototypes], reading)
    assert prediction.classes == ["c0"] and prediction.scores == [pytest.approx(0.9)]
    # Reference: sigmoid(coefficients . prototypes) > 0.5 at 16x16, each pixel 4x4 input pixels.
    logits = np.tensordot(rows[6:, 7], protos, axes=1)
    expected = np.kron(logits > 0, np.ones((4, 4), dtype=int)).astype(bool)
    assert reference.mask_iou(reference.rasterised(prediction.polygons[0], 64, 64), expected) > 0.75


def test_letterbox_round_trip_of_a_box_drawn_on_the_original() -> None:
    original = np.zeros((90, 160, 3), np.uint8)
    box = (40, 20, 100, 70)
    original[box[1] : box[3], box[0] : box[2]] = 255
    io = ModelIO(width=64, height=64, resize=Resize.LETTERBOX)
    prepared = prepare(original, io)
    image = prepared.tensor[0].transpose(1, 2, 0)
    np.testing.assert_allclose(image[0, 0], 114 / 255, atol=1e-6)  # the padding's grey
    lit = np.argwhere(image[:, :, 0] > 0.5)
    (y1, x1), (y2, x2) = lit.min(axis=0), lit.max(axis=0) + 1
    back = prepared.placement.to_original(np.array([x1, y1, x2, y2], np.float64))
    np.testing.assert_allclose(back, box, atol=LETTERBOX_TOLERANCE_PX / prepared.placement.scale_x)


def test_centre_crop_keeps_the_middle() -> None:
    original = np.zeros((40, 80, 3), np.uint8)
    original[:, 20:60] = 255  # the middle half
    io = ModelIO(width=32, height=32, resize=Resize.CENTER_CROP)
    prepared = prepare(original, io)
    assert prepared.tensor.shape == (1, 3, 32, 32)
    # The crop sees only the white middle (its outermost columns blend with the black, resizing).
    np.testing.assert_allclose(prepared.tensor[..., 1:-1], 1.0, atol=1e-6)
    np.testing.assert_allclose(prepared.placement.to_original(np.array([0.0, 0.0])), [20, 0])


def test_mask_polygon_of_the_largest_region_bounded() -> None:
    mask = _disc(60, 60, 30, 30, 20) | _disc(60, 60, 5, 5, 2)
    polygon = mask_polygon(mask, max_points=12)
    assert polygon is not None and 3 <= len(polygon) <= 12
    assert (
        reference.mask_iou(reference.rasterised(polygon.tolist(), 60, 60), _disc(60, 60, 30, 30, 20)) > 0.85
    )
    assert mask_polygon(np.zeros((5, 5), bool), 10) is None


def _signature(
    *outputs: tuple[str, tuple[int, ...]], image: tuple[int, ...] = (1, 3, 64, 64), integers: str = "labels"
) -> Signature:
    """FP32 outputs, but for the one named `integers` (INT64)."""
    return Signature(
        inputs=(TensorSpec(name="images", datatype="FP32", shape=image),),
        outputs=tuple(
            TensorSpec(name=n, datatype="INT64" if n == integers else "FP32", shape=s) for n, s in outputs
        ),
    )


def test_each_format_checks_its_tensors_and_names_the_field() -> None:
    detection, segmentation = DetectionType.DETECTION, DetectionType.SEGMENTATION

    def io(output_format: OutputFormat) -> ModelIO:
        return ModelIO(width=64, height=64, output_format=output_format)

    def field(kind: DetectionType, model_io: ModelIO, signature: Signature, labels: int | None) -> str:
        with pytest.raises(Unservable) as caught:
            check_servable(kind, model_io, signature, labels)
        return caught.value.field

    v8 = _signature(("output0", (1, 84, 8400)))
    assert check_servable(detection, io(OutputFormat.YOLO_RAW), v8, None).classes == 80
    assert field(detection, io(OutputFormat.YOLO_RAW), v8, 20) == "labelmap_id"
    v5 = _signature(("output0", (1, 25200, 85)))
    assert check_servable(detection, io(OutputFormat.YOLO_RAW), v5, 80).classes == 80
    assert field(detection, io(OutputFormat.NMS_FREE), v5, 80) == "io.output_format"
    assert check_servable(detection, io(OutputFormat.NMS_FREE), _signature(("o", (1, 300, 6))), 80)
    assert field(detection, io(OutputFormat.NMS_FREE), _signature(("o", (1, 300, 6))), None) == "labelmap_id"
    seg = _signature(("output0", (1, 116, 8400)), ("output1", (1, 32, 160, 160)))
    assert check_servable(segmentation, io(OutputFormat.YOLO_SEG), seg, 80).outputs == ("output0", "output1")
    assert field(segmentation, io(OutputFormat.YOLO_SEG), seg, 81) == "labelmap_id"
    assert field(segmentation, io(OutputFormat.YOLO_SEG), v8, 80) == "io.output_format"
    assert field(segmentation, ModelIO(width=64, height=64), seg, 80) == "io.output_format"  # none named
    assert field(detection, io(OutputFormat.YOLO_SEG), seg, 80) == "io.output_format"  # not a detector's
    tv = _signature(
        ("boxes", (-1, 4)),
        ("labels", (-1,)),
        ("scores", (-1,)),
        ("masks", (-1, 1, 64, 64)),
        image=(3, -1, -1),
    )
    assert check_servable(segmentation, io(OutputFormat.TORCHVISION), tv, 91).outputs == (
        "boxes",
        "labels",
        "scores",
        "masks",
    )
    assert field(segmentation, io(OutputFormat.YOLO_SEG), tv, 91) == "io.layout"  # a batch-less input
    # SSD's export orders its outputs boxes, scores, labels: read in that order, the types give it away;
    # named by role, it serves.
    ssd = _signature(("boxes", (-1, 4)), ("scores", (-1,)), ("labels", (-1,)), image=(3, 64, 64))
    assert field(detection, io(OutputFormat.TORCHVISION), ssd, 91) == "io.outputs.labels"
    by_name = ModelIO(
        width=64,
        height=64,
        output_format=OutputFormat.TORCHVISION,
        outputs={"boxes": "boxes", "labels": "labels", "scores": "scores"},
    )
    assert check_servable(detection, by_name, ssd, 91).outputs == ("boxes", "labels", "scores")
    assert field(
        detection, io(OutputFormat.YOLO_RAW), _signature(("o", (1, 84, 8400)), image=(1, 3, 640, 640)), 80
    ) == ("io.height")
    renamed = ModelIO(width=64, height=64, output_format=OutputFormat.YOLO_RAW, outputs={"predictions": "x"})
    assert field(detection, renamed, v8, 80) == "io.outputs.predictions"
