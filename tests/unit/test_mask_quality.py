"""Mask quality against pycocotools: the polygon rasterisation pixel for pixel, and mask AP@[.5:.95],
AP50 and AR@100 equal to COCOeval(iouType="segm") on randomised sets (to 1e-9: both count the same
pixels, so only the float sums' order can differ)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from bench.mask_quality import pycocotools_segm, random_set
from schemas.predictions import SegmentationPrediction
from schemas.vocabulary import Role
from services.common.domain.coco import WeightedAP, mask_iou, mask_quality
from services.common.domain.polygons import rasterise
from services.common.domain.quality import Reviewed, role_quality


def _pycocotools_mask(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    [rle] = coco_mask.frPyObjects([polygon.ravel().tolist()], height, width)
    return coco_mask.decode(rle).astype(bool)  # (height, width)


@pytest.mark.parametrize("seed", range(40))
def test_rasterise_fills_the_pixels_pycocotools_fills(seed: int) -> None:
    rng = np.random.default_rng(seed)
    width, height = 90, 70
    polygons = []
    for _ in range(5):  # rasterised together, as mask_iou does
        points = int(rng.integers(3, 40))
        if seed % 4 == 0:  # whole and half pixels, where rounding decides
            polygons.append(rng.integers(0, 2 * min(width, height), (points, 2)) / 2.0)
        else:  # any polygon, self-crossing ones too
            polygons.append(rng.uniform(0, (width, height), (points, 2)))
    for polygon, (x0, y0, mask) in zip(polygons, rasterise(polygons), strict=True):
        full = np.zeros((height, width), dtype=bool)
        w, h = min(mask.shape[0], width - x0), min(mask.shape[1], height - y0)
        full[y0 : y0 + h, x0 : x0 + w] = mask[:w, :h].T
        assert not mask[w:, :].any() and not mask[:, h:].any()  # nothing outside the image
        expected = _pycocotools_mask(polygon, width, height)
        assert expected.any() and (full == expected).all()


def test_rasterise_answers_many_polygons_as_it_answers_each() -> None:
    rng = np.random.default_rng(3)
    polygons = [rng.uniform(0, 50, (int(rng.integers(3, 12)), 2)) for _ in range(600)]  # past one batch
    together = rasterise(polygons)
    assert len(together) == len(polygons)
    for polygon, (x0, y0, mask) in zip(polygons, together, strict=True):
        [(x, y, alone)] = rasterise([polygon])
        assert (x0, y0) == (x, y) and (mask == alone).all()


def test_rasterise_keeps_a_square_its_pixels() -> None:
    [(x0, y0, mask)] = rasterise([np.array([[2.0, 3.0], [6.0, 3.0], [6.0, 5.0], [2.0, 5.0]])])
    assert (x0, y0) == (2, 3)
    assert int(mask.sum()) == 4 * 2


def test_repeated_vertices_fill_what_the_polygon_without_them_fills() -> None:
    polygon = np.array([[1.0, 1.0], [9.0, 1.0], [9.0, 1.0], [9.0, 7.0], [1.0, 7.0], [1.0, 7.0]])
    [(_, _, repeated), (_, _, once)] = rasterise([polygon, np.unique(polygon, axis=0)[[0, 2, 3, 1]]])
    assert repeated.any() and (repeated == once).all()


def test_mask_iou_of_overlapping_and_apart_polygons() -> None:
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    half = square + np.array([5.0, 0.0])
    apart = square + np.array([20.0, 20.0])
    [square_mask, half_mask, apart_mask] = rasterise([square, half, apart])
    ious = mask_iou([square_mask, half_mask, apart_mask], [square_mask])
    assert ious[:, 0] == pytest.approx([1.0, 50 / 150, 0.0])
    assert mask_iou([], [square_mask]).shape == (0, 1)


@pytest.mark.parametrize("seed", range(25))
def test_mask_quality_equals_pycocotools_segm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pairs, sizes = random_set(rng, int(rng.integers(1, 12)), points=int(rng.integers(3, 30)))
    if all(not r.polygons for r, _ in pairs) or all(not p.polygons for _, p in pairs):
        pytest.skip("pycocotools needs ground truth and detections")

    quality = mask_quality(pairs)

    assert [quality.ap, quality.ap50, quality.ar] == pytest.approx(pycocotools_segm(pairs, sizes), abs=1e-9)


def test_segmentation_quality_has_box_and_mask_figures_by_role() -> None:
    truth = SegmentationPrediction(
        polygons=[[(0, 0), (10, 0), (10, 10), (0, 10)]], classes=["car"], scores=[1]
    )
    shifted = SegmentationPrediction(
        polygons=[[(0, 0), (10, 0), (10, 10), (0, 10)], [(2, 0), (12, 0), (7, 10)]],
        classes=["car", "dog"],
        scores=[0.9, 0.8],
    )
    wrong = SegmentationPrediction(polygons=[[(30, 30), (40, 30), (35, 40)]], classes=["car"], scores=[0.9])
    reviewed = [Reviewed(review=truth, champion=shifted, shadow=wrong)]

    champion = role_quality(reviewed, Role.CHAMPION)
    shadow = role_quality(reviewed, Role.SHADOW)

    figures = ("ap", "ap50", "ar", "mask_ap", "mask_ap50", "mask_ar")
    # The dog is a false positive of a class without ground truth: left out of the means.
    assert champion == pytest.approx(dict.fromkeys(figures, 1.0) | {"reviewed": 1.0})
    assert shadow == pytest.approx(dict.fromkeys(figures, 0.0) | {"reviewed": 1.0})


@pytest.mark.parametrize("seed", range(10))
def test_weighted_mask_ap_equals_the_images_repeated(seed: int) -> None:
    """The promotion gate's bootstrap of mask AP weighs images instead of repeating them: the same AP."""
    rng = np.random.default_rng(100 + seed)
    pairs, _ = random_set(rng, int(rng.integers(2, 10)), points=int(rng.integers(3, 20)))
    weights = rng.integers(0, 4, len(pairs))
    repeated = [pair for pair, weight in zip(pairs, weights, strict=True) for _ in range(weight)]
    weighted = WeightedAP.masks(pairs)
    assert weighted.ap(np.ones(len(pairs), dtype=int)) == pytest.approx(mask_quality(pairs).ap, abs=1e-12)
    assert weighted.ap(weights) == pytest.approx(mask_quality(repeated).ap, abs=1e-12)
