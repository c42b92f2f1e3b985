"""Drift of a deployment's recent predictions from its training data: a sliding window of image
features, tested feature by feature against the reference sample, with a multiple-testing correction."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import numpy as np

from schemas.events import DriftReported, FeatureDrift, MultipleTestingCorrection

from .ks import ks_2samp_columns
from .outlier import FloatMatrix, FloatVector

# Report ids are derived from what the report covers, so a replay re-derives the same id.
REPORT_NAMESPACE = UUID("3b0f6c1e-8a57-4d0e-9d1e-5c0a7b2f4e61")


def reject(p_values: FloatVector, alpha: float, correction: MultipleTestingCorrection) -> np.ndarray:
    """Which null hypotheses ("this feature did not drift") are rejected at family-wise level alpha
    (Bonferroni) or false discovery rate alpha (Benjamini-Hochberg)."""
    m = p_values.size
    if correction is MultipleTestingCorrection.BONFERRONI:
        return p_values <= alpha / m
    order = np.argsort(p_values, kind="stable")
    below = p_values[order] <= alpha * np.arange(1, m + 1) / m
    rejected = np.zeros(m, dtype=bool)
    if below.any():
        rejected[order[: np.flatnonzero(below)[-1] + 1]] = True  # every rank up to the largest passing one
    return rejected


@dataclass(frozen=True)
class DriftWindow:
    """The last predictions of a deployment scored against one reference (a faust table value)."""

    reference_id: UUID
    features: FloatMatrix  # one row per prediction, the reference's feature order, oldest first
    predicted_at: FloatVector  # POSIX seconds of each row
    total: int  # predictions added since the reference, including those that slid out

    @classmethod
    def empty(cls, reference_id: UUID, feature_count: int) -> DriftWindow:
        return cls(reference_id, np.empty((0, feature_count)), np.empty(0), 0)

    def add(self, features: FloatMatrix, predicted_at: FloatVector, capacity: int) -> DriftWindow:
        return DriftWindow(
            self.reference_id,
            np.concatenate([self.features, features])[-capacity:],
            np.concatenate([self.predicted_at, predicted_at])[-capacity:],
            self.total + len(features),
        )

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez(
            out,
            reference_id=np.array(str(self.reference_id)),
            features=self.features,
            predicted_at=self.predicted_at,
            total=np.array(self.total),
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DriftWindow:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            return cls(
                UUID(str(saved["reference_id"])),
                saved["features"],
                saved["predicted_at"],
                int(saved["total"]),
            )


def slide(
    window: DriftWindow, features: FloatMatrix, predicted_at: FloatVector, *, every: int, capacity: int
) -> tuple[DriftWindow, list[DriftWindow]]:
    """Add rows to the window; return it and the window as it stood at each multiple of `every` the
    rows crossed (a report is due on each). The rows are split at those multiples, so the due windows are
    the same however a stream happened to batch the rows, and a replay derives the same reports."""
    due: list[DriftWindow] = []
    start = 0
    while start < len(features):
        end = start + (window.total // every + 1) * every - window.total
        window = window.add(features[start:end], predicted_at[start:end], capacity)
        start = end
        if window.total % every == 0:
            due.append(window)
    return window, due


def drift_report(
    window: DriftWindow,
    reference_sample: FloatMatrix,
    feature_names: tuple[str, ...],
    *,
    deployment_id: UUID,
    alpha: float,
    correction: MultipleTestingCorrection,
) -> DriftReported:
    """The KS test of every feature of the window against the reference sample (sorted by column)."""
    result = ks_2samp_columns(window.features, reference_sample)
    rejected = reject(result.p_value, alpha, correction)
    return DriftReported(
        event_id=uuid.uuid5(REPORT_NAMESPACE, f"{deployment_id}/{window.reference_id}/{window.total}"),
        deployment_id=deployment_id,
        reference_id=window.reference_id,
        window_start=datetime.fromtimestamp(float(window.predicted_at.min()), UTC),
        window_end=datetime.fromtimestamp(float(window.predicted_at.max()), UTC),
        window_size=len(window.features),
        reference_size=len(reference_sample),
        correction=correction,
        alpha=alpha,
        features=[
            FeatureDrift(feature=name, statistic=float(d), p_value=float(p), drifted=bool(r))
            for name, d, p, r in zip(feature_names, result.statistic, result.p_value, rejected, strict=True)
        ],
        drift_detected=bool(rejected.any()),
    )
