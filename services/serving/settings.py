"""The serving gateway's settings: the shared ones and its own."""

from __future__ import annotations

from pydantic import Field

from schemas.vocabulary import ModelBackend
from services.common.settings import Settings, from_env


class ServingSettings(Settings):
    triton_model_backend: ModelBackend = Field(
        ModelBackend.PYTHON,
        validation_alias=from_env("TRITON_MODEL_BACKEND"),
        description="How Triton runs a model version's ONNX file: `python` (a python-backend wrapper around "
        "onnxruntime, what the local tritonserver can run) or `onnxruntime` (Triton's own backend, on a "
        "cluster).",
    )

    serving_shadow_budget_ms: int = Field(
        1000,
        gt=0,
        validation_alias=from_env("CVLOOP_SERVING_SHADOW_BUDGET_MS"),
        description="How long serving waits for a shadow's answer after the champion's; a later one is "
        "dropped and the event records why.",
    )
    serving_max_shadow_in_flight: int = Field(
        64,
        ge=0,
        validation_alias=from_env("CVLOOP_SERVING_MAX_SHADOW_IN_FLIGHT"),
        description="Shadow calls one serving process runs at once; beyond it a request's shadow is "
        "skipped (counted as dropped), so a slow shadow cannot pile up work.",
    )
    serving_replay_reviews: int = Field(
        200,
        ge=0,
        le=10_000,
        validation_alias=from_env("CVLOOP_SERVING_REPLAY_REVIEWS"),
        description="When a version becomes a deployment's shadow, serving runs it over the deployment's "
        "latest this many reviewed images and records its answers as shadow predictions, so the "
        "comparison and the promotion gate have paired evidence without new traffic (0: no replay).",
    )
    serving_replay_attempts: int = Field(
        5,
        ge=1,
        le=100,
        validation_alias=from_env("CVLOOP_SERVING_REPLAY_ATTEMPTS"),
        description="Tries of a shadow replay that an outage stops (Triton, the object store or Postgres "
        "failing, the shadow not loaded yet) before it stays failed until serving's next start or the next "
        "shadow change; an image's own fault never stops it.",
    )
    serving_replay_retry_s: float = Field(
        2.0,
        gt=0.0,
        le=60.0,
        validation_alias=from_env("CVLOOP_SERVING_REPLAY_RETRY_S"),
        description="Pause after a shadow replay's first failed try, doubled after each next one (at most "
        "60 s).",
    )
    serving_triton_timeout_ms: int = Field(
        10000,
        gt=0,
        validation_alias=from_env("CVLOOP_SERVING_TRITON_TIMEOUT_MS"),
        description="Longest champion call to Triton; past it the request answers 503.",
    )
    serving_max_polygon_points: int = Field(
        100,
        ge=3,
        le=10_000,
        validation_alias=from_env("CVLOOP_SERVING_MAX_POLYGON_POINTS"),
        description="Most points of a segmentation polygon: a mask's outline is simplified until it fits.",
    )
    serving_reconcile_interval_s: float = Field(
        5.0,
        gt=0,
        validation_alias=from_env("CVLOOP_SERVING_RECONCILE_INTERVAL_S"),
        description="How often serving checks that its models are loaded on Triton, reloading what a "
        "restarted or unreachable Triton lost.",
    )
    serving_auth_cache_s: float = Field(
        30.0,
        ge=0,
        validation_alias=from_env("CVLOOP_SERVING_AUTH_CACHE_S"),
        description="How long serving trusts an API key it checked. A key revoked or given other scopes "
        "is forgotten as soon as its event arrives on `api-keys`; this bounds it when Kafka is down.",
    )
