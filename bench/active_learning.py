"""The review queue's worth on the digits world: how many reviews it takes to reach a given accuracy on
drifted held-out digits when people review in the order of the acquisition score, of the outlier score
(the queue before it), or at random (the baseline, in the same run).

Production brings the demo models' training part again, half of it shifted (rotated 10-20 degrees and
darkened, as bench.trainer's shift); the held-out quarter, all shifted, is the test. The champion is the
demo's logistic regression on the clean training part, the shadow the demo's MLP; each production image
gets what the platform stores: the champion's uncertainty and the shadow's disagreement (the domain's
functions), the outlier score against the clean training images' features (the scoring service's model),
and the queue key with a 5 % audit slice. Like the platform, the queue is ranked once, when the
predictions are recorded. People review the queue's top in steps of `--step`; after each step the
champion is refitted on the clean training part plus the reviews, and measured on the test.

Printed: accuracy after each step for the three orders (the active-learning curves), and the reviews each
needs to reach `--target` of the way from the champion's accuracy to that of a champion refitted on every
production image, as a ratio against random (medians over `--seeds`).

    .venv/bin/python -m bench.active_learning [--step 25] [--steps 16] [--seeds 3] [--target 0.8]
"""

from __future__ import annotations

import argparse
import statistics
import uuid
import warnings
from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from cvloop.demo.digits import DIGITS_IO, LABELS, digit_images, feature_matrix, split_indices
from cvloop.demo.trainer_workspace import shifted_digit
from schemas.api.deployments import ReviewQueueSettings
from schemas.predictions import ClassificationPrediction
from services.common.domain.acquisition import acquisition_score, disagreement, queue_key, uncertainty
from services.common.domain.preprocess import preprocess
from services.scoring.outlier import fit_outlier_model

SETTINGS = ReviewQueueSettings()
Order = Callable[[], np.ndarray]


def inputs(images: list[np.ndarray]) -> np.ndarray:
    """What the models see, as serving preprocesses: grey 8x8, pixels / 255, flattened."""
    return np.array([preprocess(p, DIGITS_IO).reshape(-1) for p in images])


def fit(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(max_iter=500, C=10.0).fit(x, y)  # the demo champion's model


def answers(probabilities: np.ndarray) -> list[ClassificationPrediction]:
    return [ClassificationPrediction(classes=LABELS, scores=[float(s) for s in row]) for row in probabilities]


def reviews_to_reach(curve: list[float], target: float, step: int) -> float:
    """Reviews at the first step whose accuracy reaches `target` (inf: never within the run)."""
    return next((n * step for n, accuracy in enumerate(curve) if accuracy >= target), float("inf"))


def run(seed: int, step: int, steps: int) -> tuple[dict[str, list[float]], float, float]:
    rng = np.random.default_rng(seed)
    images, targets = digit_images(), load_digits().target
    train, held_out = split_indices()
    clean = [images[i] for i in train]
    production = [shifted_digit(p, rng) if rng.uniform() < 0.5 else p for p in clean]
    x_clean, y_clean = inputs(clean), targets[train]
    x_pool, y_pool = inputs(production), targets[train]
    x_test, y_test = inputs([shifted_digit(images[i], rng) for i in held_out]), targets[held_out]

    champion = fit(x_clean, y_clean)
    with warnings.catch_warnings(category=ConvergenceWarning, action="ignore"):
        shadow = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=1).fit(x_clean, y_clean)
    outliers = fit_outlier_model(feature_matrix(clean)).score(feature_matrix(production))
    ids = [uuid.UUID(int=int(v)) for v in rng.integers(0, 2**62, len(production))]
    champion_answers = answers(champion.predict_proba(x_pool))
    shadow_answers = answers(shadow.predict_proba(x_pool))

    def keyed(score: Callable[[int], float | None]) -> Order:
        keys = np.array([queue_key(ids[k], score(k), SETTINGS.audit_fraction) for k in range(len(ids))])
        return lambda: np.argsort(-keys, kind="stable")

    orders: dict[str, Order] = {
        "acquisition": keyed(
            lambda k: acquisition_score(
                uncertainty(champion_answers[k], 0.0, SETTINGS.detection_band),
                float(outliers[k]),
                disagreement(champion_answers[k], shadow_answers[k]),
                SETTINGS,
            )
        ),
        "outlier": keyed(lambda k: float(outliers[k])),
        "random": lambda: rng.permutation(len(ids)),
    }
    curves = {}
    for name, order in orders.items():
        queue = order()
        curves[name] = [
            fit(
                np.vstack([x_clean, x_pool[queue[: n * step]]]),
                np.concatenate([y_clean, y_pool[queue[: n * step]]]),
            ).score(x_test, y_test)
            for n in range(steps + 1)
        ]
    everything = fit(np.vstack([x_clean, x_pool]), np.concatenate([y_clean, y_pool])).score(x_test, y_test)
    return curves, float(champion.score(x_test, y_test)), float(everything)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--step", type=int, default=25, help="reviews between two refits")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.8, help="share of the gain from reviewing all")
    args = parser.parse_args()

    needed: dict[str, list[float]] = {}
    curves_by_seed = []
    for seed in range(args.seeds):
        curves, start, ceiling = run(seed, args.step, args.steps)
        curves_by_seed.append(curves)
        target = start + args.target * (ceiling - start)
        print(
            f"seed {seed}: champion {start:.3f}, refitted on every production image {ceiling:.3f}, "
            f"target {target:.3f}"
        )
        for name, curve in curves.items():
            needed.setdefault(name, []).append(reviews_to_reach(curve, target, args.step))

    print("\nmedian accuracy on the drifted held-out digits after N reviews:")
    print("reviews     " + "".join(f"{n * args.step:>7}" for n in range(args.steps + 1)))
    for name in curves_by_seed[0]:
        medians = [statistics.median(c[name][n] for c in curves_by_seed) for n in range(args.steps + 1)]
        print(f"{name:<12}" + "".join(f"{a:>7.3f}" for a in medians))
    baseline = statistics.median(needed["random"])
    print(
        f"\nreviews to reach {args.target:.0%} of the gain (median of {args.seeds} seeds; random = baseline):"
    )
    for name, values in needed.items():
        median = statistics.median(values)
        ratio = f"{median / baseline:.2f}x random" if np.isfinite(baseline) else "random never got there"
        print(f"{name:<12} {median:>6} reviews  ({ratio})  per seed {values}")


if __name__ == "__main__":
    main()
