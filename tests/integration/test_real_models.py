"""Real architectures, built and exported by the frameworks' own code (tests/models_build.py in the
torch environment): torchvision's Faster R-CNN MobileNet, SSDlite and Mask R-CNN, ultralytics' YOLOv8n,
YOLOv8n-seg and YOLOv10n. Each is checked as registration checks it, registered with the io of
docs/models.md, deployed served and called through `python -m services.serving` on the real
tritonserver; cvloop's boxes, classes and scores equal the framework's own postprocessed answer on the
same images, and its polygons outline the framework's masks (MASKS: the tolerances by format).

Tolerances: the framework runs the model in torch, Triton runs its ONNX export in onnxruntime, so the
numbers agree to float32 rounding across a deep network: scores within SCORE_RTOL, box corners within
BOX_TOLERANCE_PX. No resampling differs: torchvision's images have its export's size (320 x 320, the
resize is the identity), ultralytics' are 640 x 480, letterboxed into 640 x 640 by padding alone (80 rows
above and below), so the boxes and masks also come back through the letterbox's offset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from cvloop.stack.settings import StackSettings
from schemas.predictions import DetectionType
from schemas.vocabulary import OutputFormat
from tests import detection_reference as reference
from tests.models_env import RealModel, real_models
from tests.serving_support import ServedWorld, served_models, served_prediction

World = ServedWorld[RealModel]

WAIT_S = 180.0
SCORE_RTOL = 1e-3
BOX_TOLERANCE_PX = 0.5


@pytest.fixture(scope="module")
async def world(
    postgres_settings: StackSettings,
    kafka_settings: StackSettings,
    s3_settings: StackSettings,
    triton_settings: StackSettings,
) -> AsyncIterator[World]:
    models = await asyncio.to_thread(real_models)
    settings = triton_settings.model_copy(update={"serving_triton_timeout_ms": 120_000})
    async with served_models(settings, "real-models", models, lambda model: model.threshold) as world:
        yield world


async def _predict(world: World, name: str, png: bytes) -> dict[str, Any]:
    return await served_prediction(world.url, world.key, world.deployment_ids[name], png, wait_s=WAIT_S)


def _matches(
    found: list[tuple[str, float, Any]], label: str, score: float, box: np.ndarray | None
) -> int | None:
    """The index of the first found detection with that label and score (and box, when given)."""
    for i, (found_label, found_score, found_box) in enumerate(found):
        if found_label != label or not np.isclose(found_score, score, rtol=SCORE_RTOL, atol=1e-7):
            continue
        if box is None or np.abs(np.asarray(found_box) - box).max() <= BOX_TOLERANCE_PX:
            return i
    return None


def _assert_detections(prediction: dict[str, Any], answer: dict[str, np.ndarray], model: RealModel) -> None:
    """The same detections, one for one (in any order: near-equal scores may swap between runtimes)."""
    found = list(zip(prediction["classes"], prediction["scores"], prediction["boxes"], strict=True))
    assert len(found) == len(answer["scores"]), (len(found), len(answer["scores"]))
    for box, score, cls in zip(answer["boxes"], answer["scores"], answer["classes"], strict=True):
        at = _matches(found, model.labels[int(cls)], float(score), box)
        assert at is not None, (model.labels[int(cls)], float(score), box.tolist(), found)
        found.pop(at)


@dataclass(frozen=True)
class MaskTolerance:
    grow_px: int  # the framework's mask grown by this before the polygon's pixels are looked up in it
    inside: float  # the share of the drawn polygon's pixels that must lie in the grown mask
    iou: float  # the polygon against the mask's largest region, where `whole` says it is compared
    whole: float  # compared where the largest region holds this share of the mask (one blob)
    small_px: int  # a largest region under this may have no polygon, a polygon under it is not compared


MASKS = {
    # Same resolution on both sides: torchvision pastes its masks into the input, serving traces them.
    OutputFormat.TORCHVISION: MaskTolerance(grow_px=1, inside=0.95, iou=0.8, whole=0.0, small_px=25),
    # Serving traces the prototypes' grid (a cell is 4 input pixels); ultralytics upsamples the logits
    # bilinearly to the input first: outlines differ by up to a cell, more on thin random shapes.
    OutputFormat.YOLO_SEG: MaskTolerance(grow_px=4, inside=0.85, iou=0.55, whole=0.9, small_px=400),
}


def _assert_segments(prediction: dict[str, Any], answer: dict[str, np.ndarray], model: RealModel) -> int:
    """The framework's detections with their polygons, less those whose mask has no area to outline;
    each polygon lies in its mask and outlines its largest region (MASKS). Returns how many masks were
    compared."""
    tolerance = MASKS[model.output_format]
    found = list(zip(prediction["classes"], prediction["scores"], prediction["polygons"], strict=True))
    compared = 0
    for score, cls, mask in zip(answer["scores"], answer["classes"], answer["masks"], strict=True):
        label = model.labels[int(cls)]
        region = reference.largest_region(mask)
        at = _matches(found, label, float(score), None)
        if at is None:
            assert region.sum() < tolerance.small_px, (label, float(score), int(region.sum()))
            continue
        drawn = reference.rasterised(found.pop(at)[2], *model.image_size)
        if drawn.sum() < tolerance.small_px:  # a few cells: the outline's offset outweighs the area
            continue
        grown = ndimage.binary_dilation(mask, iterations=tolerance.grow_px)
        assert (drawn & grown).sum() >= tolerance.inside * drawn.sum(), (label, float(score))
        if region.sum() >= tolerance.whole * mask.sum():
            assert reference.mask_iou(drawn, region) > tolerance.iou, (label, float(score))
        compared += 1
    assert not found, found
    return compared


DETECTORS = ["fasterrcnn-mobilenet", "ssdlite", "yolov8n", "yolov10n"]
SEGMENTERS = ["maskrcnn", "yolov8n-seg"]


@pytest.mark.parametrize("name", DETECTORS)
async def test_detections_equal_the_frameworks_own(world: World, name: str) -> None:
    model = world.models[name]
    assert model.detection_type == DetectionType.DETECTION
    compared = 0
    for i, png in enumerate(model.images()):
        answer = model.answer(i)
        compared += len(answer["scores"])
        _assert_detections(await _predict(world, name, png), answer, model)
    assert compared, f"{name} should detect something on the images"


@pytest.mark.parametrize("name", SEGMENTERS)
async def test_polygons_cover_the_frameworks_own_masks(world: World, name: str) -> None:
    model = world.models[name]
    assert model.detection_type == DetectionType.SEGMENTATION
    compared = 0
    for i, png in enumerate(model.images()):
        compared += _assert_segments(await _predict(world, name, png), model.answer(i), model)
    assert compared, "the images should give masks large enough to compare"
