"""The generated detection world: deterministic by seed, boxes that hold their digit inside the canvas, and
a production stream that differs from the training set where it is meant to."""

from __future__ import annotations

import numpy as np

from cvloop.demo.detection_world import CANVAS, DRIFTED, MAX_DIGITS, TRAINING, scenes
from cvloop.demo.digits import LABELS


def test_the_same_seed_makes_the_same_scenes_and_another_seed_others() -> None:
    first, again, other = (list(scenes(TRAINING, 20, seed)) for seed in (4, 4, 5))
    assert all(
        np.array_equal(a.pixels, b.pixels) and a.truth == b.truth for a, b in zip(first, again, strict=True)
    )
    assert any(not np.array_equal(a.pixels, b.pixels) for a, b in zip(first, other, strict=True))


def test_every_box_is_a_labelled_digit_inside_the_canvas_and_none_overlap() -> None:
    for condition in (TRAINING, DRIFTED):
        for scene in scenes(condition, 50, 1):
            assert scene.pixels.shape == (CANVAS, CANVAS, 3) and scene.pixels.dtype == np.uint8
            assert 1 <= len(scene.truth.boxes) <= MAX_DIGITS and set(scene.truth.classes) <= set(LABELS)
            scene.truth.check_inside(CANVAS, CANVAS)
            for i, (x1, y1, x2, y2) in enumerate(scene.truth.boxes):
                assert condition.sizes[0] <= x2 - x1 == y2 - y1 <= condition.sizes[1]
                for a1, b1, a2, b2 in scene.truth.boxes[i + 1 :]:
                    assert x2 <= a1 or a2 <= x1 or y2 <= b1 or b2 <= y1


def test_production_drifts_in_background_contrast_scale_and_camera() -> None:
    clean, drifted = list(scenes(TRAINING, 100, 1)), list(scenes(DRIFTED, 100, 1))

    def background(found: list) -> float:  # the median pixel: mostly background
        return float(np.median([np.median(s.pixels) for s in found]))

    def side(found: list) -> float:
        return float(np.mean([x2 - x1 for s in found for x1, _, x2, _ in s.truth.boxes]))

    assert background(drifted) > background(clean) + 40
    assert side(drifted) < side(clean) - 5
    assert {s.camera for s in clean} == {"camera-a"} and {s.camera for s in drifted} == {"camera-b"}
    red, blue = (np.mean([s.pixels[..., c].mean() for s in drifted]) for c in (0, 2))
    assert red > blue * 1.2  # the tint
