"""Mask AP/AR of reviewed polygon predictions (services.common.domain.coco.mask_quality) against
pycocotools' COCOeval with iouType "segm" and faster-coco-eval's COCOeval_faster in the same process, on
the same randomised set: reviews of star-shaped polygons and model answers near them (points moved,
shapes missed, false shapes added). The references are timed from the same polygons, their conversion to
their own format included, as the scoring stream and the api would have to do. No stack.

    .venv/bin/python -m bench.mask_quality [--images 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from schemas.predictions import SegmentationPrediction
from services.common.domain.coco import mask_quality

CLASSES = ["person", "car", "dog"]
Pair = tuple[SegmentationPrediction, SegmentationPrediction]


def _star(rng: np.random.Generator, size: tuple[int, int], points: int) -> list[tuple[float, float]]:
    """A simple polygon: `points` vertices around a centre, at increasing angles and random radii, kept in
    the image."""
    width, height = size
    radius = rng.uniform(4, min(width, height) / 4)
    centre = rng.uniform((radius, radius), (width - radius, height - radius))
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    radii = radius * rng.uniform(0.5, 1.0, points)
    xy = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return [(float(x), float(y)) for x, y in np.clip(xy, 0, (width, height))]


def _moved(
    rng: np.random.Generator, polygon: list[tuple[float, float]], size: tuple[int, int]
) -> list[tuple[float, float]]:
    moved = np.asarray(polygon) + rng.normal(0, 1.5, (len(polygon), 2)) + rng.normal(0, 2, 2)
    return [(float(x), float(y)) for x, y in np.clip(moved, 0, size)]


def random_set(
    rng: np.random.Generator, images: int, points: int = 24
) -> tuple[list[Pair], list[tuple[int, int]]]:
    """(review, prediction) pairs and each image's (width, height)."""
    pairs, sizes = [], []
    for _ in range(images):
        size = (int(rng.integers(64, 320)), int(rng.integers(64, 240)))
        count = int(rng.integers(0, 8))
        truth = [_star(rng, size, points) for _ in range(count)]
        labels = [CLASSES[i] for i in rng.integers(0, len(CLASSES), count)]
        kept = [i for i in range(count) if rng.uniform() < 0.8]
        answer = [_moved(rng, truth[i], size) for i in kept]
        answer_labels = [labels[i] if rng.uniform() < 0.9 else CLASSES[0] for i in kept]
        extra = int(rng.integers(0, 3))
        answer += [_star(rng, size, points) for _ in range(extra)]
        answer_labels += [CLASSES[i] for i in rng.integers(0, len(CLASSES), extra)]
        review = SegmentationPrediction(polygons=truth, classes=labels, scores=[1.0] * count)
        prediction = SegmentationPrediction(
            polygons=answer,
            classes=answer_labels,
            scores=[float(s) for s in rng.uniform(0.01, 1, len(answer))],
        )
        pairs.append((review, prediction))
        sizes.append(size)
    return pairs, sizes


def _coco_inputs(pairs: list[Pair], sizes: list[tuple[int, int]], masks: Any) -> tuple[dict, list[dict]]:
    """The ground truth dataset (polygons) and the detections (RLEs, as COCO results must be), converted
    with the library's own mask API."""
    category = {name: i + 1 for i, name in enumerate(CLASSES)}
    truth: dict = {
        "images": [{"id": i + 1, "width": w, "height": h} for i, (w, h) in enumerate(sizes)],
        "categories": [{"id": i} for i in category.values()],
        "annotations": [],
    }
    detections = []
    for image, ((review, prediction), (width, height)) in enumerate(zip(pairs, sizes, strict=True), start=1):
        for polygon, name in zip(review.polygons, review.classes, strict=True):
            flat = [float(v) for point in polygon for v in point]
            rle = masks.frPyObjects([flat], height, width)
            truth["annotations"].append(
                {
                    "id": len(truth["annotations"]) + 1,
                    "image_id": image,
                    "category_id": category[name],
                    "segmentation": [flat],
                    "area": float(masks.area(rle)[0]),
                    "bbox": list(masks.toBbox(rle)[0]),
                    "iscrowd": 0,
                }
            )
        for polygon, name, score in zip(
            prediction.polygons, prediction.classes, prediction.scores, strict=True
        ):
            flat = [float(v) for point in polygon for v in point]
            [rle] = masks.frPyObjects([flat], height, width)
            detections.append(
                {"image_id": image, "category_id": category[name], "segmentation": rle, "score": score}
            )
    return truth, detections


def pycocotools_segm(pairs: list[Pair], sizes: list[tuple[int, int]]) -> list[float]:
    """[AP@[.5:.95], AP50, AR@100] of pycocotools' COCOeval(iouType="segm") on the pairs."""
    truth, detections = _coco_inputs(pairs, sizes, coco_mask)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(detections) if detections else COCO(), iouType="segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(evaluation.stats[0]), float(evaluation.stats[1]), float(evaluation.stats[8])]


def faster_coco_eval_segm(pairs: list[Pair], sizes: list[tuple[int, int]]) -> list[float]:
    """The same figures from faster-coco-eval's COCOeval_faster (its C++ matching). Imported here: it
    is the bench extra's, and the tests use this module's pycocotools half only."""
    import faster_coco_eval
    from faster_coco_eval.core import mask as faster_mask

    truth, detections = _coco_inputs(pairs, sizes, faster_mask)
    gt = faster_coco_eval.COCO(truth)
    evaluation = faster_coco_eval.COCOeval_faster(
        gt, gt.loadRes(detections), iouType="segm", print_function=lambda *_: None
    )
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return [float(evaluation.stats[0]), float(evaluation.stats[1]), float(evaluation.stats[8])]


def _best_of(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Each run's fastest time, the runs taking turns (a shared machine's load then falls on all alike)."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pairs, sizes = random_set(np.random.default_rng(0), args.images)
    shapes = sum(len(r.polygons) + len(p.polygons) for r, p in pairs)
    print(f"{args.images} images, {shapes} polygons of 24 points, {len(CLASSES)} classes")
    ours = mask_quality(pairs)
    print(f"{'cvloop':<24} AP {ours.ap:.6f}  AP50 {ours.ap50:.6f}  AR {ours.ar:.6f}")
    references: dict[str, Callable[[list[Pair], list[tuple[int, int]]], list[float]]] = {
        f"pycocotools {version('pycocotools')}": pycocotools_segm,
        f"faster-coco-eval {version('faster-coco-eval')}": faster_coco_eval_segm,
    }
    for name, reference in references.items():
        ap, ap50, ar = reference(pairs, sizes)
        print(f"{name:<24} AP {ap:.6f}  AP50 {ap50:.6f}  AR {ar:.6f}")
    times = _best_of(
        args.repeats,
        {"cvloop": lambda: mask_quality(pairs)}
        | {
            name: (lambda reference=reference: reference(pairs, sizes))
            for name, reference in references.items()
        },
    )
    measured = times.pop("cvloop")
    print(f"cvloop {measured * 1000:.1f} ms (best of {args.repeats}, taking turns)")
    for name, baseline in times.items():
        print(f"{name}: {baseline * 1000:.1f} ms, ratio ({name} / cvloop) {baseline / measured:.2f}x")


if __name__ == "__main__":
    main()
