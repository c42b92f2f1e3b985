"""The job runner's metrics (names fixed for the dashboards and alerts; labels bounded: kind, status)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter("cvloop_job_runs_total", "Job runs finished, by kind and final status.", ["kind", "status"])
DURATION = Histogram(
    "cvloop_job_run_duration_seconds",
    "Running time of finished job runs, from start to finish, by kind.",
    ["kind"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
ACTIVE = Gauge("cvloop_job_runs_active", "Job runs this runner has going, by kind.", ["kind"])
