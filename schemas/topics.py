"""The topic registry: every Kafka topic cvloop uses, with its key and retention.

Keys are the deployment id everywhere (but `api-keys`, keyed by project, and `deadletter`), so one
deployment's events stay ordered in one partition and faust tables keyed by deployment are co-partitioned
with their source topics.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

DAY_MS = 24 * 60 * 60 * 1000
PARTITIONS = 6
# The largest event value cvloop writes to any topic: under Kafka's default message.max.bytes and the
# producer's max_request_size (both about 1 MiB), with room left for the key and the record's framing.
MAX_MESSAGE_BYTES = 1_000_000


class CleanupPolicy(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


class TopicSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    key: str = "deployment_id"
    partitions: int = Field(PARTITIONS, ge=1)
    replication_factor: int = Field(
        3, ge=1, description="On a real cluster; the local broker has one broker."
    )
    cleanup_policy: CleanupPolicy = CleanupPolicy.DELETE
    retention_ms: int = Field(7 * DAY_MS, ge=-1, description="-1 keeps forever.")
    description: str

    def kafka_config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy.value, "retention.ms": str(self.retention_ms)}


class Topic(StrEnum):
    PREDICTIONS_RAW = "predictions.raw"
    PREDICTIONS = "predictions"
    SCORES = "scores"
    REVIEWS = "reviews"
    FEEDBACK = "feedback"
    TRAINING = "training"
    DEPLOYMENTS = "deployments"
    JOBS = "jobs"
    API_KEYS = "api-keys"
    DEADLETTER = "deadletter"


TOPICS: dict[Topic, TopicSpec] = {
    spec.name: spec  # type: ignore[misc]
    for spec in (
        TopicSpec(
            name=Topic.PREDICTIONS_RAW,
            retention_ms=3 * DAY_MS,
            description="What external producers send; ingest validates it before it goes further.",
        ),
        TopicSpec(
            name=Topic.PREDICTIONS,
            retention_ms=14 * DAY_MS,
            description="A predicted asset from serving or ingest, with both predictions and image features.",
        ),
        TopicSpec(name=Topic.SCORES, description="Outlier score per prediction; drift reports per window."),
        TopicSpec(name=Topic.REVIEWS, retention_ms=30 * DAY_MS, description="A prediction reviewed."),
        TopicSpec(
            name=Topic.FEEDBACK,
            retention_ms=30 * DAY_MS,
            description="An asset submitted to a feedback-loop dataset version.",
        ),
        TopicSpec(
            name=Topic.TRAINING, retention_ms=30 * DAY_MS, description="Training requested / finished."
        ),
        TopicSpec(
            name=Topic.DEPLOYMENTS,
            cleanup_policy=CleanupPolicy.COMPACT,
            retention_ms=-1,
            description="Champion/shadow and settings changes; compacted so a reader sees each "
            "deployment's latest state.",
        ),
        TopicSpec(
            name=Topic.JOBS, retention_ms=30 * DAY_MS, description="Processing and reference jobs requested."
        ),
        TopicSpec(
            name=Topic.API_KEYS,
            key="project_id",
            partitions=1,
            retention_ms=DAY_MS,
            description="An API key revoked or given other scopes; every serving and ingest process reads "
            "it from its end and forgets the key at once (a process starting has nothing to forget).",
        ),
        TopicSpec(
            name=Topic.DEADLETTER,
            key="source topic",
            partitions=1,
            retention_ms=30 * DAY_MS,
            description="Original bytes, error and origin of every message a consumer could not handle.",
        ),
    )
}


class ConsumerGroup(StrEnum):
    """Every durable consumer group (a faust app's group is its app id)."""

    INGEST_RAW = "cvloop-ingest-raw"
    INGEST_PERSISTENCE = "cvloop-ingest-persistence"
    JOB_RUNNER = "cvloop-job-runner"
    SCORING = "cvloop-scoring"
    PIPELINE = "cvloop-pipeline"


# What each group reads. The local broker forgets on restart, so `cvloop down` waits until each group
# has read all of these before it stops the broker (serving's follower groups are throwaway: not here).
CONSUMED: dict[ConsumerGroup, tuple[Topic, ...]] = {
    ConsumerGroup.INGEST_RAW: (Topic.PREDICTIONS_RAW,),
    ConsumerGroup.INGEST_PERSISTENCE: (Topic.PREDICTIONS,),
    ConsumerGroup.JOB_RUNNER: (Topic.JOBS,),
    ConsumerGroup.SCORING: (Topic.PREDICTIONS, Topic.REVIEWS),
    ConsumerGroup.PIPELINE: (Topic.FEEDBACK, Topic.TRAINING, Topic.REVIEWS),
}


# faust apps and their tables, each table naming the topic it is co-partitioned with. Clients cannot
# create topics on the local broker, so it pre-creates each table's changelog and each app's leader
# topic from this list; a service adding a table adds it here.
FAUST_APPS: dict[str, dict[str, Topic]] = {
    ConsumerGroup.SCORING: {"drift-windows": Topic.PREDICTIONS},
    ConsumerGroup.PIPELINE: {"submitted-counts": Topic.FEEDBACK},
}
