"""What the scoring stream shows Grafana. Labels are bounded: deployment, role, feature name, metric
name, topic and partition; never an image or prediction id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "cvloop_scoring_events_total",
    "Events the scoring stream handled, by topic and outcome (scored, replayed, unscored, reported, "
    "measured, dead_lettered).",
    ["topic", "outcome"],
)
OUTLIER_SCORE = Histogram(
    "cvloop_scoring_outlier_score",
    "Outlier scores: the fraction of training images less outlying than the image.",
    ["deployment"],
    buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0),
)
DRIFT_P_VALUE = Gauge(
    "cvloop_scoring_drift_p_value",
    "KS p-value of the last drift report, per feature.",
    ["deployment", "feature"],
)
DRIFT_STATISTIC = Gauge(
    "cvloop_scoring_drift_statistic",
    "KS statistic of the last drift report, per feature.",
    ["deployment", "feature"],
)
DRIFT_DETECTED = Gauge(
    "cvloop_scoring_drift_detected",
    "1 when the last drift report found the feature drifted (after the correction); `any`: the report.",
    ["deployment", "feature"],
)
QUALITY = Gauge(
    "cvloop_scoring_quality",
    "Quality of a role against the reviews over the rolling window (accuracy, ap, ap50, ar, reviewed).",
    ["deployment", "role", "metric"],
)
# Seconds and a `percentile` label: promtool's lint refuses abbreviated units and a `quantile` label
# outside a summary.
LATENCY = Gauge(
    "cvloop_scoring_latency_seconds",
    "Inference latency percentiles (50, 95) by role, from the latencies the predictions report.",
    ["deployment", "role", "percentile"],
)
CONSUMER_LAG = Gauge(
    "cvloop_scoring_consumer_lag",
    "Messages behind the partition's end after the last batch.",
    ["topic", "partition"],
)
