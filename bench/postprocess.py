"""Serving's postprocessing of a YOLOv8-layout answer, (1, 84, 8400): 8,400 candidate boxes and 80
classes decoded, thresholded, suppressed (class-aware NMS) and placed in the original image's pixels,
per image, against a straightforward baseline in the same process (anchor by anchor, then greedy NMS
box by box, in plain Python); and the YOLOv8-seg answer's masks made polygons. No stack.

    .venv/bin/python -m bench.postprocess [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from cvloop.demo.architectures import COCO_CLASSES, MASK_COEFFICIENTS, YOLO_SIZE
from schemas.model_io import ModelIO
from schemas.predictions import DetectionType
from schemas.vocabulary import OutputFormat, Resize
from services.common.domain.preprocess import placement
from services.serving.postprocess import Reading, to_prediction

ANCHORS = 8400
OBJECTS = 40
IMAGE = (1280, 720)


def answer(rng: np.random.Generator, extra: int = 0) -> np.ndarray:
    """A (1, 84 + extra, 8400) answer shaped like a trained head's on a busy image: OBJECTS objects, each
    seen by the anchors around it with scores falling off with the distance, every other score under 0.02."""
    anchors = np.arange(ANCHORS)
    xy = rng.uniform(0, YOLO_SIZE, (2, ANCHORS))
    wh = rng.uniform(8, 64, (2, ANCHORS))
    scores = rng.uniform(0, 0.02, (COCO_CLASSES, ANCHORS))
    for _ in range(OBJECTS):
        centre, size = rng.uniform(60, YOLO_SIZE - 60, 2), rng.uniform(30, 200, 2)
        near = anchors[np.hypot(*(xy - centre[:, np.newaxis])) < size.min() / 2]
        xy[:, near] = centre[:, np.newaxis] + rng.normal(0, 3, (2, len(near)))
        wh[:, near] = size[:, np.newaxis] * rng.uniform(0.85, 1.15, (2, len(near)))
        scores[rng.integers(COCO_CLASSES), near] = rng.uniform(0.2, 0.95, len(near))
    rows = np.concatenate([xy, wh, scores, rng.normal(0, 1, (extra, ANCHORS))])
    return rows[np.newaxis].astype(np.float32)


def baseline(rows: np.ndarray, threshold: float, iou_threshold: float, limit: int) -> list[tuple]:
    """Anchor by anchor, then greedy NMS one box at a time (the textbook version)."""
    candidates = []
    for anchor in range(rows.shape[2]):
        column = rows[0, :, anchor]
        cls = int(column[4:].argmax())
        score = float(column[4 + cls])
        if score >= threshold:
            cx, cy, w, h = (float(v) for v in column[:4])
            candidates.append((score, cls, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
    candidates.sort(key=lambda c: -c[0])
    kept: list[tuple] = []
    for score, cls, box in candidates:
        if len(kept) == limit:
            break
        if all(other_cls != cls or _iou(box, other) <= iou_threshold for _, other_cls, other in kept):
            kept.append((score, cls, box))
    return kept


def _iou(a: tuple, b: tuple) -> float:
    overlap = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


def timed(call: Callable[[], object], repeats: int) -> float:
    """The median milliseconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = [f"class-{i}" for i in range(COCO_CLASSES)]
    io = ModelIO(
        width=YOLO_SIZE, height=YOLO_SIZE, resize=Resize.LETTERBOX, output_format=OutputFormat.YOLO_RAW
    )
    rows = answer(rng)
    print(f"YOLOv8 answer {rows.shape}, image {IMAGE[0]}x{IMAGE[1]} letterboxed to {YOLO_SIZE}")
    print(
        f"{'threshold':>9} {'candidates':>10} {'kept':>5} {'cvloop ms':>10} {'baseline ms':>12} {'ratio':>7}"
    )
    for threshold in (0.25, 0.05, 0.001):
        reading = Reading(
            DetectionType.DETECTION, OutputFormat.YOLO_RAW, io, labels, placement(*IMAGE, io), threshold, 100
        )
        prediction = to_prediction([rows], reading)
        expected = baseline(rows, threshold, io.iou_threshold, io.max_detections)
        assert len(prediction.boxes) == len(expected), (len(prediction.boxes), len(expected))
        candidates = int((rows[0, 4:].max(axis=0) >= threshold).sum())
        ours = timed(partial(to_prediction, [rows], reading), args.repeats)
        simple = partial(baseline, rows, threshold, io.iou_threshold, io.max_detections)
        theirs = timed(simple, max(3, args.repeats // 5))
        print(
            f"{threshold:>9} {candidates:>10} {len(expected):>5} {ours:>10.2f} {theirs:>12.1f} "
            f"{theirs / ours:>6.1f}x"
        )

    seg_io = io.model_copy(update={"output_format": OutputFormat.YOLO_SEG})
    side = YOLO_SIZE // 4
    seg_rows = answer(rng, MASK_COEFFICIENTS)
    ys, xs = np.mgrid[:side, :side] / side
    protos = np.stack(
        [np.sin((k + 1) * xs * 3) + np.cos((k % 5 + 1) * ys * 3) for k in range(MASK_COEFFICIENTS)]
    )
    protos = protos[np.newaxis].astype(np.float32)
    seg_reading = Reading(
        DetectionType.SEGMENTATION,
        OutputFormat.YOLO_SEG,
        seg_io,
        labels,
        placement(*IMAGE, seg_io),
        0.25,
        100,
    )
    segments = to_prediction([seg_rows, protos], seg_reading)
    detect_reading = Reading(
        DetectionType.DETECTION, OutputFormat.YOLO_RAW, io, labels, placement(*IMAGE, io), 0.25, 100
    )
    boxes_only = timed(lambda: to_prediction([seg_rows[:, : 4 + COCO_CLASSES]], detect_reading), args.repeats)
    with_masks = timed(lambda: to_prediction([seg_rows, protos], seg_reading), args.repeats)
    print(
        f"YOLOv8-seg {seg_rows.shape} + protos {protos.shape}: {len(segments.polygons)} polygons, "
        f"{with_masks:.2f} ms against {boxes_only:.2f} ms for its boxes alone "
        f"({with_masks / boxes_only:.1f}x)"
    )


if __name__ == "__main__":
    main()
