"""Names of the internal topics faust-streaming 0.15 uses, so they can be created before it starts.

The local broker refuses CreateTopics and auto-creates unknown topics with 4 partitions, which faust
rejects for a changelog whose source topic has another count (PartitionsMismatch); so they are made
up front with the source topic's partition count.
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.topics import FAUST_APPS, TOPICS


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def leader_topic(app_id: str) -> str:
    """One partition; the member assigned partition 0 is the app's leader (`on_leader` timers)."""
    return f"{app_id}-__assignor-__leader"


def internal_topics(app_id: str, table_partitions: Mapping[str, int]) -> dict[str, int]:
    """Every internal topic of an app with the given tables (name to partitions), with its partitions."""
    topics = {leader_topic(app_id): 1}
    topics |= {changelog_topic(app_id, table): n for table, n in table_partitions.items()}
    return topics


def registry_internal_topics() -> dict[str, int]:
    """The internal topics of every faust app in the registry; each changelog is co-partitioned with
    its table's source topic."""
    topics: dict[str, int] = {}
    for app_id, tables in FAUST_APPS.items():
        topics |= internal_topics(
            app_id, {table: TOPICS[source].partitions for table, source in tables.items()}
        )
    return topics
