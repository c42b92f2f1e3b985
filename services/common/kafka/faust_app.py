"""faust-streaming apps configured from Settings, and faust topics for registry entries."""

from __future__ import annotations

from typing import Any

import faust

from schemas.topics import TOPICS, Topic
from services.common.settings import Settings

from .consumer import group_timeouts
from .faust_transport import use_short_fetch_transport
from .producer import SINGLE_RECORD_BATCH


def create_app(app_id: str, settings: Settings, **overrides: Any) -> faust.App:
    """A faust app on the configured Kafka. Topics are never declared by the app (the registry
    provisions them); the web server is off unless
    overridden (`web_enabled=True, web_port=...`); tables live in memory unless `store` says otherwise.
    Its consumer waits at most 50 ms for a fetch rather than faust's fixed 1.5 s (see faust_transport)."""
    timeouts = group_timeouts(settings)
    config: dict[str, Any] = {
        "broker": f"kafka://{settings.kafka_bootstrap_servers}",
        "topic_allow_declare": False,
        "web_enabled": False,
        "store": "memory://",
        # Faust makes its folder even for tables in memory: in the state folder, not the working one.
        "datadir": str(settings.state_path / app_id),
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": timeouts.session_ms / 1000,
        "broker_heartbeat_interval": timeouts.heartbeat_ms / 1000,
    }
    if timeouts.request_ms is not None:
        config["broker_request_timeout"] = timeouts.request_ms / 1000
    if settings.runs_tansu:  # its changelogs' ends must be exact (see SINGLE_RECORD_BATCH)
        config["producer_max_batch_size"] = SINGLE_RECORD_BATCH
    app = faust.App(app_id, **(config | overrides))
    use_short_fetch_transport(app)
    return app


def registry_topic(app: faust.App, topic: Topic) -> faust.TopicT:
    """A registry topic with its partitions; keys are deployment ids (str), values the raw bytes that
    `schemas.codec.decode` parses, so a bad message can be dead-lettered as it came."""
    return app.topic(
        str(topic),
        partitions=TOPICS[topic].partitions,
        key_type=str,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
