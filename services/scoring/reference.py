"""The training-data reference of a deployment: its image features' sample (for drift) and the fitted
outlier model (for scores), stored as one .npz object."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from schemas.features import IMAGE_FEATURES

from .outlier import FloatMatrix, OutlierModel, fit_outlier_model


@dataclass(frozen=True)
class Reference:
    feature_names: tuple[str, ...]
    sample: FloatMatrix  # at most the configured sample size of training rows, each column sorted
    model: OutlierModel
    training_size: int

    def matrix(self, features: list[dict[str, float]]) -> FloatMatrix:
        """Rows of the reference's features; LookupError naming a feature an event lacks."""
        try:
            rows = np.array(
                [[values[name] for name in self.feature_names] for values in features], dtype=float
            )
        except KeyError as exc:
            raise LookupError(f"features.{exc.args[0]} is missing: the reference needs it") from None
        return rows.reshape(len(features), len(self.feature_names))

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez_compressed(
            out,
            feature_names=np.array(self.feature_names),
            sample=self.sample,
            center=self.model.center,
            scale=self.model.scale,
            precision=self.model.precision,
            calibration=self.model.calibration,
            training_size=np.array(self.training_size),
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Reference:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            return cls(
                feature_names=tuple(str(name) for name in saved["feature_names"]),
                sample=saved["sample"],
                model=OutlierModel(saved["center"], saved["scale"], saved["precision"], saved["calibration"]),
                training_size=int(saved["training_size"]),
            )


def build_reference(features: FloatMatrix, sample_size: int, seed: int = 0) -> Reference:
    """Fit the outlier model on every training row of IMAGE_FEATURES and keep a fixed random sample
    (the same for the same data) for the KS tests."""
    rows = features.shape[0]
    keep = np.sort(np.random.default_rng(seed).permutation(rows)[:sample_size])
    return Reference(
        feature_names=IMAGE_FEATURES,
        sample=np.sort(features[keep], axis=0),
        model=fit_outlier_model(features),
        training_size=rows,
    )
