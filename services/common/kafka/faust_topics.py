"""The internal topics faust-streaming 0.15 uses, as registry specs, so they exist before it starts.

The local broker refuses CreateTopics and auto-creates unknown topics with 4 partitions, which faust
rejects for a changelog whose source topic has another count (PartitionsMismatch); with
`topic_allow_declare=False` nothing creates them on a real Kafka either. So they are provisioned with
the registry's topics, each changelog with its table's source topic's partition count.
"""

from __future__ import annotations

from schemas.topics import FAUST_APPS, TOPICS, CleanupPolicy, TopicSpec


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def leader_topic(app_id: str) -> str:
    """One partition; the member assigned partition 0 is the app's leader (`on_leader` timers)."""
    return f"{app_id}-__assignor-__leader"


def internal_topic_specs(app_id: str, tables: dict[str, int]) -> list[TopicSpec]:
    """An app's leader topic and its tables' changelogs (table name to partitions), compacted."""
    compacted = {"cleanup_policy": CleanupPolicy.COMPACT, "retention_ms": -1, "key": "faust's own"}
    specs = [
        TopicSpec(name=leader_topic(app_id), partitions=1, description="faust's leader election", **compacted)
    ]
    specs += [
        TopicSpec(
            name=changelog_topic(app_id, table),
            partitions=partitions,
            description=f"changelog of {app_id}'s {table} table",
            **compacted,
        )
        for table, partitions in tables.items()
    ]
    return specs


def all_topic_specs() -> list[TopicSpec]:
    """Every topic the platform needs: the registry's and every registry faust app's internal ones."""
    specs = list(TOPICS.values())
    for app_id, tables in FAUST_APPS.items():
        specs += internal_topic_specs(
            app_id, {table: TOPICS[source].partitions for table, source in tables.items()}
        )
    return specs
