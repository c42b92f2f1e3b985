"""Which outlier detector the scoring stream uses, by measurement: on the shared image features of
scikit-learn's digits (the training data) against held-out digits rotated, darkened or made noisy, each
candidate's AUROC (held-out clean digits as negatives, their shifted versions as positives) and its
scoring speed, as a ratio against the fastest.

    .venv/bin/python -m bench.outlier_detectors
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from cvloop.demo.digits import SHIFTS, digit_images, feature_matrix
from services.scoring.outlier import FloatMatrix, FloatVector, fit_outlier_model

Scorer = Callable[[FloatMatrix], FloatVector]


def candidates(training: FloatMatrix) -> dict[str, Scorer]:
    center, scale = training.mean(axis=0), training.std(axis=0)
    scale[scale == 0.0] = 1.0
    z = (training - center) / scale
    knn = NearestNeighbors(n_neighbors=5).fit(z)
    forest = IsolationForest(n_estimators=100, random_state=0).fit(z)
    return {
        "mahalanobis-ledoit-wolf": fit_outlier_model(training).outlyingness,
        "knn-5 distance": lambda x: knn.kneighbors((x - center) / scale)[0][:, -1],
        "isolation forest": lambda x: -forest.score_samples((x - center) / scale),
    }


def main() -> None:
    rng = np.random.default_rng(0)
    images = digit_images()
    order = rng.permutation(len(images))
    training = feature_matrix([images[i] for i in order[:1200]])
    held_out_images = [images[i] for i in order[1200:]]
    held_out = feature_matrix(held_out_images)
    shifted = {
        name: feature_matrix([shift(p, rng) for p in held_out_images]) for name, shift in SHIFTS.items()
    }
    many = np.tile(held_out, (50, 1))  # ~30,000 rows for the speed figure

    print(f"training: {len(training)} digits; held out: {len(held_out)} clean and each shift of them")
    rates: dict[str, float] = {}
    rows = []
    for name, score in candidates(training).items():
        aurocs = {
            shift: roc_auc_score(
                np.r_[np.zeros(len(held_out)), np.ones(len(rows_))], np.r_[score(held_out), score(rows_)]
            )
            for shift, rows_ in shifted.items()
        }
        start = time.perf_counter()
        score(many)
        rates[name] = len(many) / (time.perf_counter() - start)
        rows.append((name, aurocs))
    fastest = max(rates.values())
    print(f"{'detector':<26}" + "".join(f"{s:>11}" for s in SHIFTS) + f"{'rows/s':>13}{'vs fastest':>12}")
    for name, aurocs in rows:
        print(
            f"{name:<26}"
            + "".join(f"{aurocs[s]:>11.3f}" for s in SHIFTS)
            + f"{rates[name]:>13,.0f}{rates[name] / fastest:>11.3f}x"
        )


if __name__ == "__main__":
    main()
