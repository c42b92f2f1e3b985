"""The scoring stream's settings (and its reference job's): the shared ones and its own."""

from __future__ import annotations

from pydantic import Field

from schemas.events import MultipleTestingCorrection
from services.common.settings import Settings, from_env


class ScoringSettings(Settings):
    scoring_batch_size: int = Field(
        1000,
        gt=0,
        validation_alias=from_env("SCORING_BATCH_SIZE"),
        description="Most predictions the scoring stream takes in one batch.",
    )
    scoring_batch_wait_s: float = Field(
        0.2,
        gt=0,
        validation_alias=from_env("SCORING_BATCH_WAIT_S"),
        description="Longest the scoring stream waits to fill a batch before scoring what it has.",
    )
    scoring_reference_sample_size: int = Field(
        10_000,
        gt=0,
        validation_alias=from_env("SCORING_REFERENCE_SAMPLE_SIZE"),
        description="Training images a reference keeps for the drift tests (the outlier model sees all).",
    )
    scoring_reference_refresh_s: float = Field(
        5.0,
        gt=0,
        validation_alias=from_env("SCORING_REFERENCE_REFRESH_S"),
        description="How long the scoring stream trusts what it knows of a deployment's reference before "
        "asking Postgres again.",
    )
    scoring_drift_window: int = Field(
        1000,
        gt=1,
        validation_alias=from_env("SCORING_DRIFT_WINDOW"),
        description="Predictions in a deployment's sliding drift window.",
    )
    scoring_drift_min_window: int = Field(
        100,
        gt=0,
        validation_alias=from_env("SCORING_DRIFT_MIN_WINDOW"),
        description="Fewest predictions a drift report is computed on.",
    )
    scoring_drift_every: int = Field(
        1000,
        gt=0,
        validation_alias=from_env("SCORING_DRIFT_EVERY"),
        description="A drift report is due every this many predictions of a deployment...",
    )
    scoring_drift_interval_s: float = Field(
        60.0,
        gt=0,
        validation_alias=from_env("SCORING_DRIFT_INTERVAL_S"),
        description="...or this many seconds after the last one, when new predictions came meanwhile.",
    )
    scoring_drift_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        validation_alias=from_env("SCORING_DRIFT_ALPHA"),
        description="Significance level of the drift decision, after the correction.",
    )
    scoring_drift_correction: MultipleTestingCorrection = Field(
        MultipleTestingCorrection.BENJAMINI_HOCHBERG,
        validation_alias=from_env("SCORING_DRIFT_CORRECTION"),
        description="Multiple-testing correction over the features: `benjamini-hochberg` or `bonferroni`.",
    )
    scoring_quality_window: int = Field(
        500,
        gt=0,
        validation_alias=from_env("SCORING_QUALITY_WINDOW"),
        description="Most recent reviewed predictions the champion and shadow quality is measured on.",
    )
    scoring_latency_window: int = Field(
        1000,
        gt=0,
        validation_alias=from_env("SCORING_LATENCY_WINDOW"),
        description="Most recent predictions the latency percentiles by role are taken over.",
    )
