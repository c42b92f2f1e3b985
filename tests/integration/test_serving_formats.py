"""The output formats of the model families people deploy, served end to end: graphs with the exact
layouts of YOLOv8, YOLOv5, NMS-free, YOLOv8-seg and torchvision Mask R-CNN exports
(cvloop.demo.architectures) registered, deployed and called through `python -m services.serving` on
the real tritonserver; each answer equals a box-by-box reference decoding (tests/detection_reference)
of the same graph run here by onnxruntime on the same input tensor."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from cvloop.demo import architectures
from cvloop.demo.architectures import Architecture
from cvloop.stack.settings import StackSettings
from services.common.domain.preprocess import preprocess
from tests import detection_reference as reference
from tests import scenes
from tests.serving_support import ServedWorld, served_models, served_prediction

World = ServedWorld[Architecture]

WAIT_S = 90.0
THRESHOLD = 0.1
WIDTH, HEIGHT = 480, 360  # not square: the letterbox pads
BOX_TOLERANCE_PX = 0.05  # Triton's onnxruntime and this one may differ in the last float32 bits
SCORE_TOLERANCE = 1e-4
MASK_IOU = 0.7  # a bounded polygon (100 points) through the outline's pixel centres vs the mask itself
MIN_MASK_PIXELS = 400  # smaller masks: a polygon's half-pixel inset weighs too much for the IoU

BUILDERS: dict[str, Callable[[], Architecture]] = {
    "yolov8": architectures.yolov8,
    "yolov5": architectures.yolov5,
    "nms-free": architectures.nms_free,
    "yolov8-seg": architectures.yolov8_seg,
    "torchvision-maskrcnn": architectures.torchvision_mask_rcnn,
}


def scene(seed: int) -> bytes:
    return scenes.scene(seed, WIDTH, HEIGHT)


@pytest.fixture(scope="module")
async def world(
    postgres_settings: StackSettings,
    kafka_settings: StackSettings,
    s3_settings: StackSettings,
    triton_settings: StackSettings,
) -> AsyncIterator[World]:
    settings = triton_settings.model_copy(update={"serving_triton_timeout_ms": 60_000})
    built = {name: build() for name, build in BUILDERS.items()}
    async with served_models(settings, "formats", built, lambda _: THRESHOLD) as world:
        yield world


async def _predict(world: World, name: str, png: bytes) -> dict[str, Any]:
    return await served_prediction(world.url, world.key, world.deployment_ids[name], png, wait_s=WAIT_S)


def _run_here(arch: Architecture, png: bytes) -> list[np.ndarray]:
    """The graph run by onnxruntime here on cvloop's preprocessing of the image."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    tensor = preprocess(pixels, arch.io)
    session = onnxruntime.InferenceSession(arch.onnx, providers=["CPUExecutionProvider"])
    feed = tensor[0] if len(session.get_inputs()[0].shape) == 3 else tensor
    return session.run(None, {"images": feed})


def _expected_yolo(arch: Architecture, outputs: list[np.ndarray]) -> list[reference.Detection]:
    rows = outputs[0][0]
    io_ = arch.io
    if arch.io.output_format == "yolo_raw" and rows.shape[0] > rows.shape[1]:  # YOLOv5: anchors first
        return reference.yolo(
            rows.T, rows.shape[1] - 5, True, THRESHOLD, io_.iou_threshold, io_.max_detections
        )
    classes = len(arch.labels)
    return reference.yolo(rows, classes, False, THRESHOLD, io_.iou_threshold, io_.max_detections)


def _assert_boxes(
    prediction: dict[str, Any], expected: list[reference.Detection], arch: Architecture
) -> None:
    letterbox = reference.Letterbox(WIDTH, HEIGHT, arch.io.width)
    assert prediction["classes"] == [arch.labels[d.cls] for d in expected]
    np.testing.assert_allclose(prediction["scores"], [d.score for d in expected], atol=SCORE_TOLERANCE)
    boxes = [letterbox.box_to_original(d.box) for d in expected]
    np.testing.assert_allclose(prediction["boxes"], boxes, atol=BOX_TOLERANCE_PX)


@pytest.mark.parametrize("name", ["yolov8", "yolov5"])
async def test_yolo_raw_decoded_and_suppressed_like_the_reference(world: World, name: str) -> None:
    arch = world.models[name]
    for seed in range(2):
        png = scene(seed)
        expected = _expected_yolo(arch, _run_here(arch, png))
        assert expected, "the scene should give detections"
        _assert_boxes(await _predict(world, name, png), expected, arch)


async def test_nms_free_rows_like_the_reference(world: World) -> None:
    arch = world.models["nms-free"]
    png = scene(3)
    rows = _run_here(arch, png)[0][0]
    expected = [
        reference.Detection(row[:4].astype(np.float64), float(row[4]), int(row[5]))
        for row in rows
        if row[4] >= THRESHOLD
    ]
    assert expected
    _assert_boxes(await _predict(world, "nms-free", png), expected, arch)


def _assert_segments(prediction: dict[str, Any], expected: list[tuple[str, float, np.ndarray]]) -> None:
    """The prediction holds the reference's detections in order (label, score), less those whose mask
    has no area to outline; each polygon, drawn on the original, covers its mask's largest region."""
    found = list(zip(prediction["classes"], prediction["scores"], prediction["polygons"], strict=True))
    compared = 0
    for label, score, mask in expected:
        region = reference.largest_region(mask)
        if found and found[0][0] == label and abs(found[0][1] - score) <= SCORE_TOLERANCE:
            polygon = found.pop(0)[2]
            if region.sum() >= MIN_MASK_PIXELS:
                compared += 1
                assert reference.mask_iou(reference.rasterised(polygon, WIDTH, HEIGHT), region) > MASK_IOU
        else:  # dropped: only a mask too small or thin to enclose an area may be
            assert region.sum() < MIN_MASK_PIXELS, (label, score)
    assert not found, found
    assert compared, "the scene should give masks large enough to compare"


async def test_yolo_seg_polygons_like_the_reference_masks(world: World) -> None:
    arch = world.models["yolov8-seg"]
    png = scene(4)
    outputs = _run_here(arch, png)
    rows, protos = outputs[0][0], outputs[1][0]
    coefficients, side = protos.shape[0], protos.shape[1]
    classes = rows.shape[0] - 4 - coefficients
    kept = reference.yolo(rows, classes, False, THRESHOLD, arch.io.iou_threshold, arch.io.max_detections)
    letterbox = reference.Letterbox(WIDTH, HEIGHT, arch.io.width)
    step = arch.io.width // side
    masks = []
    for detection in kept:
        logits = np.tensordot(rows[4 + classes :, detection.anchor], protos, axes=1)
        centres = (np.arange(side) + 0.5) * step
        x1, y1, x2, y2 = detection.box
        inside = ((centres >= y1) & (centres <= y2))[:, None] & ((centres >= x1) & (centres <= x2))[None, :]
        mask = np.kron((logits > 0) & inside, np.ones((step, step), dtype=np.uint8)).astype(bool)
        masks.append(letterbox.mask_to_original(mask))
    prediction = await _predict(world, "yolov8-seg", png)
    _assert_segments(prediction, [(arch.labels[d.cls], d.score, m) for d, m in zip(kept, masks, strict=True)])


async def test_torchvision_masks_become_polygons_like_the_reference(world: World) -> None:
    arch = world.models["torchvision-maskrcnn"]
    png = scene(5)
    boxes, labels, scores, masks = _run_here(arch, png)
    expected = []
    for i in np.flatnonzero(scores >= THRESHOLD):
        # torchvision pastes each mask inside its box; the input is the image stretched: stretch it back.
        x1, y1, x2, y2 = boxes[i]
        ys, xs = np.mgrid[: masks.shape[2], : masks.shape[3]] + 0.5
        inside = (xs > np.floor(x1)) & (xs < np.ceil(x2)) & (ys > np.floor(y1)) & (ys < np.ceil(y2))
        mask = Image.fromarray(((masks[i, 0] > arch.io.mask_threshold) & inside).astype(np.uint8) * 255)
        original = np.asarray(mask.resize((WIDTH, HEIGHT), Image.NEAREST)) > 127
        expected.append((arch.labels[int(labels[i])], float(scores[i]), original))
    _assert_segments(await _predict(world, "torchvision-maskrcnn", png), expected)
