"""How often the promotion gate promotes a candidate it should not, and misses one it should: 20
simulated classification candidates of known accuracy (champion 0.80, candidates 0.71 to 0.90 in steps of
0.01, one of them equal) reviewed one prediction at a time, repeated over seeds. Each candidate's
correctness is correlated with the champion's (the same hard images trip both), as between a model and
its retrained successor.

Three ways to decide, over the same simulated reviews: the gate as the pipeline runs it (McNemar's exact
test after every review from the minimum of pairs on; the pipeline tests once per batch of reviews, so
at most this often), the same test once at the end of the review
budget, and the baseline without statistics (promote when the shadow's accuracy is higher once the
minimum of pairs is reached). Figures are counts over all runs and the gate's rates as a ratio against
the baseline's. Then what one detection decision costs: the paired bootstrap over 2,000 reviewed images
(`PIPELINE_GATE_WINDOW`'s default), per resample, against matching the resampled images again with
`detection_quality` (the plain way), in the same process.

    .venv/bin/python -m bench.promotion_gate [--seeds 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from schemas.predictions import ClassificationPrediction, DetectionPrediction
from schemas.vocabulary import GateOutcome
from services.common.domain.coco import WeightedAP, detection_quality
from services.common.domain.promotion import GateSettings, gate, paired_bootstrap
from services.common.domain.quality import Reviewed

CHAMPION_ACCURACY = 0.80
DELTAS = np.round(np.linspace(-0.09, 0.10, 20), 2)  # the candidates' true accuracy minus the champion's
SHARED = 0.5  # chance that a review's difficulty is the same for both roles
BUDGET = 400  # paired reviews a candidate gets
CLEARLY_BETTER = 0.05  # a candidate this much better should be promoted within the budget
SETTINGS = GateSettings(
    min_pairs=100, level=0.05, latency_p95_budget_ms=500.0, watch_reviews=200, bootstrap_resamples=0
)
RIGHT = ClassificationPrediction(classes=["a", "b"], scores=[0.9, 0.1])
WRONG = ClassificationPrediction(classes=["b", "a"], scores=[0.9, 0.1])


def reviews(delta: float, rng: np.random.Generator) -> list[Reviewed]:
    """BUDGET paired reviews (truth "a") of the champion and a candidate `delta` more accurate."""
    champion_draw = rng.random(BUDGET)
    shared = rng.random(BUDGET) < SHARED
    shadow_draw = np.where(shared, champion_draw, rng.random(BUDGET))
    champion_right = champion_draw < CHAMPION_ACCURACY
    shadow_right = shadow_draw < CHAMPION_ACCURACY + delta
    return [
        Reviewed(review=RIGHT, champion=RIGHT if c else WRONG, shadow=RIGHT if s else WRONG)
        for c, s in zip(champion_right, shadow_right, strict=True)
    ]


def promoted_sequentially(reviewed: list[Reviewed]) -> int | None:
    """The review at which the gate, evaluated after each review, promotes; None within the budget."""
    for n in range(SETTINGS.min_pairs, BUDGET + 1):
        if gate(reviewed[:n], 10.0, SETTINGS).outcome is GateOutcome.PROMOTED:
            return n
    return None


def promoted_once(reviewed: list[Reviewed]) -> bool:
    return gate(reviewed, 10.0, SETTINGS).outcome is GateOutcome.PROMOTED


def promoted_naively(reviewed: list[Reviewed]) -> bool:
    first = reviewed[: SETTINGS.min_pairs]
    shadow = sum(r.shadow is RIGHT for r in first)
    champion = sum(r.champion is RIGHT for r in first)
    return shadow > champion


def review(rng: np.random.Generator) -> DetectionPrediction:
    """Two to four boxes of three classes on a 260-pixel image."""
    count = int(rng.integers(2, 5))
    corners = rng.uniform(0, 200, (count, 2))
    boxes = np.hstack([corners, corners + rng.uniform(10, 60, (count, 2))])
    return DetectionPrediction(
        classes=[str(c) for c in rng.integers(0, 3, count)], scores=[1.0] * count, boxes=boxes.tolist()
    )


def answer(truth: DetectionPrediction, rng: np.random.Generator) -> DetectionPrediction:
    """A model's: each box found (moved a little) four times in five, and one false box."""
    kept = [i for i in range(len(truth.boxes)) if rng.uniform() < 0.8]
    boxes = [list(np.asarray(truth.boxes[i]) + np.tile(rng.normal(0, 3, 2), 2)) for i in kept]
    x, y = rng.uniform(0, 200, 2)
    return DetectionPrediction(
        classes=[truth.classes[i] for i in kept] + ["0"],
        scores=rng.uniform(0.05, 1, len(kept) + 1).tolist(),
        boxes=[*boxes, [x, y, x + 20, y + 20]],
    )


def bootstrap_cost(images: int = 2000, resamples: int = 200, plain_resamples: int = 5) -> None:
    rng = np.random.default_rng(0)
    truths = [review(rng) for _ in range(images)]
    champion = [(truth, answer(truth, rng)) for truth in truths]
    shadow = [(truth, answer(truth, rng)) for truth in truths]
    started = time.perf_counter()
    paired_bootstrap(WeightedAP.boxes(champion), WeightedAP.boxes(shadow), resamples, seed=0)
    weighted = (time.perf_counter() - started) / resamples
    started = time.perf_counter()
    for _ in range(plain_resamples):
        picked = rng.integers(0, images, images)
        detection_quality([champion[i] for i in picked])
        detection_quality([shadow[i] for i in picked])
    plain = (time.perf_counter() - started) / plain_resamples
    print(
        f"detection bootstrap over {images} images: {weighted * 1000:.1f} ms a resample (matching included) "
        f"against {plain * 1000:.0f} ms matching the resample again: {plain / weighted:.0f}x faster; "
        f"{resamples} resamples {weighted * resamples:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="repetitions of the 20 candidates")
    seeds = parser.parse_args().seeds
    started = time.perf_counter()
    worse = int((DELTAS <= 0).sum()) * seeds
    better = int((DELTAS >= CLEARLY_BETTER).sum()) * seeds
    equal = int((DELTAS == 0).sum()) * seeds
    counts = {name: {"false": 0, "missed": 0, "equal": 0} for name in ("sequential", "once", "naive")}
    reviews_to_promote: list[int] = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        for delta in DELTAS:
            reviewed = reviews(float(delta), rng)
            at = promoted_sequentially(reviewed)
            for name, promoted in (
                ("sequential", at is not None),
                ("once", promoted_once(reviewed)),
                ("naive", promoted_naively(reviewed)),
            ):
                counts[name]["false"] += int(promoted and delta <= 0)
                counts[name]["equal"] += int(promoted and delta == 0)
                counts[name]["missed"] += int(not promoted and delta >= CLEARLY_BETTER)
            if at is not None and delta >= CLEARLY_BETTER:
                reviews_to_promote.append(at)

    print(
        f"{len(DELTAS)} candidates x {seeds} seeds; champion accuracy {CHAMPION_ACCURACY}, candidates "
        f"{CHAMPION_ACCURACY + DELTAS[0]:.2f}-{CHAMPION_ACCURACY + DELTAS[-1]:.2f}; "
        f"min pairs {SETTINGS.min_pairs}, level {SETTINGS.level}, budget {BUDGET} reviews"
    )
    print(f"runs with a candidate no better: {worse}; clearly better (>= +{CLEARLY_BETTER}): {better}")
    naive = counts["naive"]
    for name, label in (
        ("sequential", "gate after every review (as deployed, at most)"),
        ("once", f"gate once at {BUDGET} reviews"),
        ("naive", f"baseline: higher accuracy at {SETTINGS.min_pairs} reviews"),
    ):
        c = counts[name]
        ratio = (
            f"  ({c['false'] / naive['false']:.2f}x the baseline's false promotions)"
            if name != "naive" and naive["false"]
            else ""
        )
        print(
            f"{label:45s} false promotions {c['false']:3d}/{worse} ({c['false'] / worse:.0%}), "
            f"(equal one {c['equal']}/{equal}), missed {c['missed']:3d}/{better} ({c['missed'] / better:.0%})"
            f"{ratio}"
        )
    if reviews_to_promote:
        print(
            "reviews until a clearly better candidate is promoted (as deployed): median "
            f"{int(np.median(reviews_to_promote))}, range {min(reviews_to_promote)}-{max(reviews_to_promote)}"
        )
    print(f"{time.perf_counter() - started:.0f} s")
    bootstrap_cost(resamples=500)


if __name__ == "__main__":
    main()
