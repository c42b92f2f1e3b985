"""Every consumer's Prometheus metrics (ingest's consumers, the streams' agents, the job runner's, serving's
follower), labelled by the consumer's name: a handful per process, so the labels stay bounded."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

STALLED = Gauge(
    "cvloop_consumer_stalled",
    "1 while the consumer cannot make progress (its last attempt failed on an outage and it has not "
    "got through a batch since); 0 once it moves again.",
    ["consumer"],
)
FAILED_ATTEMPTS = Counter(
    "cvloop_consumer_failed_attempts_total",
    "Attempts that stopped on an outage (or an unclassified error) and are retried uncommitted.",
    ["consumer"],
)
DEAD_LETTERED = Counter(
    "cvloop_consumer_dead_lettered_total",
    "Messages a consumer set aside on the deadletter topic with the reason, the stream going on.",
    ["consumer"],
)
