"""The scoring stream's math against independent references: scipy's KS test and FDR control,
pycocotools' COCOeval, and the outlier score's calibration."""

from __future__ import annotations

import contextlib
import io
from uuid import uuid4

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.stats import false_discovery_control, ks_2samp

from schemas.events import MultipleTestingCorrection
from schemas.features import IMAGE_FEATURES
from schemas.predictions import ClassificationPrediction, DetectionPrediction
from schemas.vocabulary import Role
from services.common.domain.coco import WeightedAP, detection_quality
from services.common.domain.quality import Reviewed, role_quality
from services.scoring.drift import DriftWindow, reject, slide
from services.scoring.ks import ks_2samp_columns
from services.scoring.outlier import fit_outlier_model
from services.scoring.quality import LatencyWindows
from services.scoring.reference import Reference, build_reference


@pytest.mark.parametrize(
    ("n1", "n2"),
    [(1, 1), (7, 7), (50, 50), (30, 47), (200, 300), (1000, 10_000), (1000, 10_001), (12_000, 900)],
)
def test_ks_equals_scipy_statistic_and_p_value(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 31 + n2)
    window = rng.normal(0.15, 1.0, (n1, 6))
    reference = rng.normal(0.0, 1.0, (n2, 6))
    window[:, 1], reference[:, 1] = np.round(window[:, 1]), np.round(reference[:, 1])  # ties
    window[:, 2], reference[:, 2] = 0.5, 0.5  # a constant feature
    reference[:, 3] += 3.0  # far apart
    window[:, 4] = rng.exponential(1.0, n1)

    result = ks_2samp_columns(window, np.sort(reference, axis=0))

    for j in range(window.shape[1]):
        expected = ks_2samp(window[:, j], reference[:, j])
        assert result.statistic[j] == pytest.approx(expected.statistic, abs=1e-9), j
        assert result.p_value[j] == pytest.approx(expected.pvalue, abs=1e-9), j


def test_ks_equals_scipy_where_the_exact_p_value_is_negligible() -> None:
    rng = np.random.default_rng(5)
    window = rng.normal(1.0, 1.0, (1000, 2))
    reference = rng.normal(0.0, 1.0, (10_000, 2))

    result = ks_2samp_columns(window, np.sort(reference, axis=0))

    for j in range(2):
        expected = ks_2samp(window[:, j], reference[:, j])  # exact: slow, and below 1e-30
        assert result.statistic[j] == pytest.approx(expected.statistic, abs=1e-9)
        assert result.p_value[j] == pytest.approx(expected.pvalue, abs=1e-9)
        assert result.p_value[j] < 1e-30


def test_ks_refuses_mismatched_columns() -> None:
    with pytest.raises(ValueError, match="same columns"):
        ks_2samp_columns(np.zeros((3, 2)), np.zeros((3, 3)))


def test_bonferroni_rejects_below_alpha_over_m() -> None:
    p = np.array([0.001, 0.012, 0.013, 0.5])
    assert reject(p, 0.05, MultipleTestingCorrection.BONFERRONI).tolist() == [True, True, False, False]


@pytest.mark.parametrize("seed", range(20))
def test_benjamini_hochberg_matches_scipy_adjusted_p_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.02, rng.integers(0, 5)), rng.uniform(0, 1, 8)])
    rng.shuffle(p)
    expected = false_discovery_control(p, method="bh") <= 0.05
    assert reject(p, 0.05, MultipleTestingCorrection.BENJAMINI_HOCHBERG).tolist() == expected.tolist()


def test_benjamini_hochberg_rejects_every_rank_up_to_the_last_passing_one() -> None:
    # 0.03 > 2/4 * 0.05 alone, but the 3rd smallest passes (0.035 <= 0.0375), which carries it.
    p = np.array([0.035, 0.001, 0.03, 0.9])
    assert reject(p, 0.05, MultipleTestingCorrection.BENJAMINI_HOCHBERG).tolist() == [True, True, True, False]


def _random_detection(rng: np.random.Generator, classes: list[str], scored: bool) -> DetectionPrediction:
    count = int(rng.integers(0, 7))
    xy = rng.uniform(0, 80, (count, 2))
    wh = rng.uniform(2, 40, (count, 2))
    return DetectionPrediction(
        boxes=[tuple(map(float, (x, y, x + w, y + h))) for (x, y), (w, h) in zip(xy, wh, strict=True)],
        classes=[classes[i] for i in rng.integers(0, len(classes), count)],
        scores=[float(s) for s in (rng.uniform(0.01, 1, count) if scored else np.ones(count))],
    )


def _jitter(prediction: DetectionPrediction, rng: np.random.Generator) -> DetectionPrediction:
    """A model's answer near the truth: boxes moved a little, a score each, some dropped."""
    keep = [i for i in range(len(prediction.boxes)) if rng.uniform() < 0.8]
    boxes = []
    for i in keep:
        x1, y1, x2, y2 = prediction.boxes[i]
        dx, dy = rng.normal(0, 2, 2)
        boxes.append((max(x1 + dx, 0.0), max(y1 + dy, 0.0), max(x2 + dx, 0.0) + 1.0, max(y2 + dy, 0.0) + 1.0))
    return DetectionPrediction(
        boxes=boxes,
        classes=[prediction.classes[i] for i in keep],
        scores=[float(s) for s in rng.uniform(0.01, 1, len(keep))],
    )


def _pycocotools(
    pairs: list[tuple[DetectionPrediction, DetectionPrediction]], classes: list[str]
) -> list[float]:
    def xywh(box: tuple[float, float, float, float]) -> list[float]:
        return [box[0], box[1], box[2] - box[0], box[3] - box[1]]

    category = {name: i + 1 for i, name in enumerate(classes)}
    truth = {
        "images": [{"id": i + 1} for i in range(len(pairs))],
        "categories": [{"id": i} for i in category.values()],
        "annotations": [],
    }
    detections = []
    for image, (review, prediction) in enumerate(pairs, start=1):
        for box, name in zip(review.boxes, review.classes, strict=True):
            b = xywh(box)
            truth["annotations"].append(
                {
                    "id": len(truth["annotations"]) + 1,
                    "image_id": image,
                    "category_id": category[name],
                    "bbox": b,
                    "area": b[2] * b[3],
                    "iscrowd": 0,
                }
            )
        for box, name, score in zip(prediction.boxes, prediction.classes, prediction.scores, strict=True):
            detections.append(
                {"image_id": image, "category_id": category[name], "bbox": xywh(box), "score": score}
            )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(detections) if detections else COCO(), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(evaluation.stats[0]), float(evaluation.stats[1]), float(evaluation.stats[8])]


@pytest.mark.parametrize("seed", range(25))
def test_detection_quality_equals_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = ["cat", "dog", "car"]
    pairs = []
    for _ in range(int(rng.integers(1, 12))):
        review = _random_detection(rng, classes, scored=False)
        prediction = _jitter(review, rng) if rng.uniform() < 0.7 else _random_detection(rng, classes, True)
        pairs.append((review, prediction))
    if all(not r.boxes for r, _ in pairs) or all(not p.boxes for _, p in pairs):
        pytest.skip("pycocotools needs ground truth and detections")

    quality = detection_quality(pairs)

    assert [quality.ap, quality.ap50, quality.ar] == pytest.approx(_pycocotools(pairs, classes), abs=1e-6)


@pytest.mark.parametrize("seed", range(15))
def test_weighted_ap_equals_the_images_repeated(seed: int) -> None:
    """The promotion gate's bootstrap weighs images instead of repeating them: the same AP."""
    rng = np.random.default_rng(seed)
    classes = ["cat", "dog", "car"]
    pairs = []
    for _ in range(int(rng.integers(1, 12))):
        review = _random_detection(rng, classes, scored=False)
        prediction = _jitter(review, rng) if rng.uniform() < 0.7 else _random_detection(rng, classes, True)
        pairs.append((review, prediction))
    weights = rng.integers(0, 4, len(pairs))
    repeated = [pair for pair, weight in zip(pairs, weights, strict=True) for _ in range(weight)]

    weighted = WeightedAP.boxes(pairs)

    assert weighted.ap(np.ones(len(pairs), dtype=int)) == pytest.approx(
        detection_quality(pairs).ap, abs=1e-12
    )
    assert weighted.ap(weights) == pytest.approx(detection_quality(repeated).ap, abs=1e-12)


def test_classification_accuracy_by_role() -> None:
    def answer(label: str) -> ClassificationPrediction:
        other = "b" if label == "a" else "a"
        return ClassificationPrediction(classes=[label, other], scores=[0.9, 0.1])

    reviewed = [
        Reviewed(review=answer("a"), champion=answer("a"), shadow=answer("b")),
        Reviewed(review=answer("b"), champion=answer("a"), shadow=answer("b")),
        Reviewed(review=answer("b"), champion=answer("b"), shadow=None),
    ]
    assert role_quality(reviewed, Role.CHAMPION) == {"accuracy": pytest.approx(2 / 3), "reviewed": 3.0}
    assert role_quality(reviewed, Role.SHADOW) == {"accuracy": 0.5, "reviewed": 2.0}


def test_latency_percentiles_over_the_last_values() -> None:
    windows = LatencyWindows(size=100)
    deployment = uuid4()
    for latency in range(1, 201):
        windows.add(deployment, Role.CHAMPION, float(latency))
    assert windows.percentiles(deployment, Role.CHAMPION) == pytest.approx((150.5, 195.05))
    assert windows.percentiles(deployment, Role.SHADOW) is None


def test_outlier_score_is_the_fraction_of_training_rows_less_outlying() -> None:
    rng = np.random.default_rng(0)
    training = rng.normal(0, 1, (5000, 4))
    model = fit_outlier_model(training)

    own = model.score(training)
    # Each training row is more outlying than exactly its rank's share of the training rows.
    assert sorted(own) == pytest.approx(np.arange(5000) / 5000)
    fresh = model.score(rng.normal(0, 1, (20_000, 4)))
    assert np.quantile(fresh, [0.1, 0.5, 0.9]) == pytest.approx(
        [0.1, 0.5, 0.9], abs=0.025
    )  # calibrated, up to sampling noise
    assert model.score(np.full((1, 4), 6.0))[0] == 1.0
    assert 0.0 <= fresh.min() and fresh.max() <= 1.0


def test_outlier_model_handles_constant_features_and_flags_a_change_in_them() -> None:
    rng = np.random.default_rng(1)
    training = np.column_stack([rng.normal(0, 1, 500), np.full(500, 2.0)])
    model = fit_outlier_model(training)
    assert model.score(np.array([[0.0, 2.0]]))[0] < 0.5
    assert model.score(np.array([[0.0, 2.5]]))[0] == 1.0


def test_outlier_model_refuses_too_few_or_non_finite_rows() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        fit_outlier_model(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        fit_outlier_model(np.array([[0.0, np.nan], [1.0, 2.0]]))


def test_reference_round_trips_and_keeps_a_sorted_sample() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(0, 1, (300, len(IMAGE_FEATURES)))
    reference = build_reference(features, sample_size=100)
    assert reference.sample.shape == (100, len(IMAGE_FEATURES))
    assert (np.diff(reference.sample, axis=0) >= 0).all()

    loaded = Reference.from_bytes(reference.to_bytes())
    assert loaded.feature_names == IMAGE_FEATURES and loaded.training_size == 300
    assert np.array_equal(loaded.sample, reference.sample)
    assert np.array_equal(loaded.model.score(features), reference.model.score(features))


def test_reference_matrix_names_a_missing_feature() -> None:
    reference = build_reference(np.random.default_rng(3).normal(0, 1, (10, len(IMAGE_FEATURES))), 10)
    with pytest.raises(LookupError, match=r"features\.brightness is missing"):
        reference.matrix([{"contrast": 0.1}])


def test_reports_fall_due_at_the_same_windows_however_the_rows_are_batched() -> None:
    rows = np.random.default_rng(4).normal(0, 1, (250, 2))
    times = np.arange(250.0)
    reference_id = uuid4()

    def due_windows(batch_sizes: list[int]) -> list[tuple[int, list[float]]]:
        window, found, start = DriftWindow.empty(reference_id, 2), [], 0
        for size in batch_sizes:
            window, due = slide(
                window, rows[start : start + size], times[start : start + size], every=60, capacity=100
            )
            found += [(w.total, w.predicted_at.tolist()) for w in due]
            start += size
        assert window.total == 250
        return found

    one_batch = due_windows([250])
    assert [total for total, _ in one_batch] == [60, 120, 180, 240]
    assert one_batch[1][1] == list(np.arange(20.0, 120.0))  # the last 100 rows at total 120
    assert due_windows([7, 100, 1, 59, 83]) == one_batch == due_windows([1] * 250)


def test_drift_window_slides_and_round_trips() -> None:
    window = DriftWindow.empty(uuid4(), 2)
    window = window.add(np.ones((3, 2)), np.arange(3.0), capacity=4)
    window = window.add(np.zeros((3, 2)), np.arange(3.0, 6.0), capacity=4)
    assert window.total == 6 and window.features.shape == (4, 2)
    assert window.predicted_at.tolist() == [2.0, 3.0, 4.0, 5.0]
    loaded = DriftWindow.from_bytes(window.to_bytes())
    assert loaded.reference_id == window.reference_id and loaded.total == 6
    assert np.array_equal(loaded.features, window.features)
