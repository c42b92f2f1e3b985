"""Integration-test rules: tests marked `real_kafka` need what the local mock broker lacks (CreateTopics,
rebalancing between members), so they run only when KAFKA_BOOTSTRAP_SERVERS points at a real Kafka."""

from __future__ import annotations

import os

import pytest


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("real_kafka") and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("needs a real Kafka: set KAFKA_BOOTSTRAP_SERVERS")
