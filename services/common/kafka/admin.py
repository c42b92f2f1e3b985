"""Creating the registry's topics on a real Kafka (`cvloop topics create`); the local broker creates
them itself at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import IncompatibleBrokerVersion, TopicAlreadyExistsError, for_code

from schemas.topics import TopicSpec
from services.common.settings import Settings

from .faust_topics import all_topic_specs

logger = logging.getLogger(__name__)


def new_topics(specs: Iterable[TopicSpec], broker_count: int) -> list[NewTopic]:
    """One NewTopic per spec; replication is capped at the cluster's size so a small cluster works."""
    return [
        NewTopic(
            name=str(spec.name),
            num_partitions=spec.partitions,
            replication_factor=min(spec.replication_factor, broker_count),
            topic_configs=spec.kafka_config(),
        )
        for spec in specs
    ]


def outcome(error_code: int, message: str | None) -> str:
    """'created', 'exists', or the broker's error."""
    if error_code == 0:
        return "created"
    error = for_code(error_code)
    if error is TopicAlreadyExistsError:
        return "exists"
    return f"failed: {error.__name__}{f' ({message})' if message else ''}"


def existing_outcomes(specs: Iterable[TopicSpec], existing: set[str]) -> list[tuple[str, str]]:
    """For a broker that cannot create topics: which of them it already has."""
    return [
        (
            spec.name,
            "exists" if spec.name in existing else "failed: missing, and this broker cannot create topics",
        )
        for spec in specs
    ]


async def create_topics_async(settings: Settings) -> list[tuple[str, str]]:
    specs = all_topic_specs()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        brokers = len(cluster["brokers"])
        try:
            response = await admin.create_topics(new_topics(specs, brokers))
        except IncompatibleBrokerVersion:
            # librdkafka's mock (CVLOOP_KAFKA_BROKER=mock) has no CreateTopics; it made every topic at start.
            results = existing_outcomes(specs, set(await admin.list_topics()))
        else:
            # CreateTopics v0 answers (name, code), later versions add the message.
            results = [
                (name, outcome(code, rest[0] if rest else None))
                for name, code, *rest in response.topic_errors
            ]
    finally:
        await admin.close()
    for name, result in results:
        logger.info("topic provisioned", extra={"topic": name, "outcome": result})
    return results


def create_topics(settings: Settings) -> list[tuple[str, str]]:
    """Create every registry topic and faust internal topic; per topic: (name, 'created' | 'exists' |
    'failed: ...')."""
    return asyncio.run(create_topics_async(settings))
