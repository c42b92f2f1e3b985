"""ingest's Prometheus metrics. Labels are bounded: deployment ids only once the deployment is known
(an unknown one counts as "unknown"), never image or prediction ids."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PREDICTIONS = Counter(
    "cvloop_ingest_predictions_total",
    "Monitored predictions by entrance (http, kafka) and outcome (created, duplicate, refused).",
    ["deployment", "entrance", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "cvloop_ingest_request_seconds",
    "Time to answer a monitor request, by route (single, batch).",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CONSUMED = Counter(
    "cvloop_ingest_consumed_total",
    "Records handled by ingest's consumers (raw, persistence), by outcome (done, dead_lettered).",
    ["consumer", "outcome"],
)
PERSISTED = Counter(
    "cvloop_ingest_persisted_total",
    "predictions events written to Postgres (inserted) or found there already (recorded).",
    ["outcome"],
)
