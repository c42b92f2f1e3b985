"""Serving's Prometheus metrics. Labels stay bounded: deployment, role, model version, endpoint and a
fixed set of reasons; never an image or prediction id (an unknown deployment is counted as "")."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

REQUESTS = Counter(
    "cvloop_serving_requests_total",
    "Requests that reached a model, by endpoint and HTTP status (refusals: cvloop_serving_errors_total).",
    ["deployment", "endpoint", "status"],
)
ERRORS = Counter(
    "cvloop_serving_errors_total", "Requests refused or failed, by reason.", ["deployment", "reason"]
)
REQUEST_SECONDS = Histogram(
    "cvloop_serving_request_seconds",
    "Time to answer a predict request (decode to answer).",
    ["deployment"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "cvloop_serving_inference_seconds",
    "Model call time (preprocess, Triton, postprocess) by role.",
    ["deployment", "role", "model_version"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_ERRORS = Counter(
    "cvloop_serving_inference_errors_total",
    "Failed model calls by role.",
    ["deployment", "role", "model_version"],
)
SHADOW_AGREEMENT = Histogram(
    "cvloop_serving_shadow_agreement",
    "Shadow-champion agreement per request: top-1 match (0 or 1) for classification, mean IoU of "
    "matched boxes for detection.",
    ["deployment", "model_version"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.0),
)
SHADOW_IN_FLIGHT = Gauge("cvloop_serving_shadow_in_flight", "Shadow calls running now.")
SHADOW_DROPPED = Counter(
    "cvloop_serving_shadow_dropped_total",
    "Shadow calls given up: past the budget, or skipped because too many were in flight.",
    ["deployment", "reason"],
)
TRITON_UNAVAILABLE = Counter(
    "cvloop_serving_triton_unavailable_total", "Calls that found Triton unreachable or too slow."
)
EVENTS = Counter(
    "cvloop_serving_events_total",
    "Prediction events by outcome (published, failed).",
    ["deployment", "outcome"],
)
MODEL_LOADS = Counter(
    "cvloop_serving_model_loads_total", "Model loads and unloads on Triton by outcome.", ["action", "outcome"]
)
REPLAYS = Counter(
    "cvloop_serving_replays_total",
    "Shadow replays (a new shadow run over the deployment's latest reviewed images) by outcome "
    "(done, failed).",
    ["deployment", "outcome"],
)
REPLAYED = Counter(
    "cvloop_serving_replayed_total",
    "Reviewed images a shadow replay ran the shadow on, by outcome: recorded (its answer is now the "
    "asset's shadow prediction), already (that version had answered it), failed (the image's fault).",
    ["deployment", "model_version", "outcome"],
)
