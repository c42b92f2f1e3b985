"""What the pipeline stream shows Grafana. Labels are bounded: deployment and outcome; never a
prediction, experiment or job id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SUBMISSIONS = Counter(
    "cvloop_pipeline_submissions_total",
    "Submitted assets counted toward training, after deduplication by prediction id.",
    ["deployment"],
)
DUPLICATE_SUBMISSIONS = Counter(
    "cvloop_pipeline_duplicate_submissions_total",
    "Submissions seen again (a replay or a second event for one prediction) and not counted.",
    ["deployment"],
)
RECONCILIATIONS = Counter(
    "cvloop_pipeline_count_reconciliations_total",
    "Counts rebuilt from Postgres because the table had none for the deployment, or one behind its "
    "experiments (after a broker forgot its changelog, and at a deployment's first submission).",
    ["deployment"],
)
SUBMITTED_SINCE_TRIGGER = Gauge(
    "cvloop_pipeline_submitted_since_trigger",
    "Submissions counted since the deployment's last training request.",
    ["deployment"],
)
TRIGGER_THRESHOLD = Gauge(
    "cvloop_pipeline_trigger_threshold",
    "The deployment's continuous-training threshold when it last counted a submission (0: none set).",
    ["deployment"],
)
TRAINING_REQUESTS = Counter(
    "cvloop_pipeline_training_requests_total", "Training requests the pipeline triggered.", ["deployment"]
)
TRIGGERS = Counter(
    "cvloop_pipeline_triggers_total",
    "Training requests by the trigger rule that fired: submitted, drift, outlier_rate, quality.",
    ["deployment", "rule"],
)
DUPLICATE_SCORES = Counter(
    "cvloop_pipeline_duplicate_scores_total",
    "Drift reports and outlier scores seen again (a replay) and not counted toward a trigger.",
    ["deployment", "type"],
)
EXPORTS = Counter(
    "cvloop_pipeline_exports_total",
    "Finished trainings by outcome: exported and made champion or shadow, exported and left for a person "
    "(manual), exported but not deployed as serving could not call it (unservable), or failed (training "
    "failed or its experiment could not be exported).",
    ["deployment", "outcome"],
)
GATE_DECISIONS = Counter(
    "cvloop_pipeline_gate_decisions_total",
    "Promotion-gate decisions published (a decision is published when it changes something or its reason "
    "changed): held, promoted, watching, kept, rolled_back.",
    ["deployment", "outcome"],
)
