"""The services as `cvloop up` starts them, on the session's servers, for one loop module at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cvloop.demo.loop import SERVICES
from cvloop.stack import stack
from services.common.settings import Settings


@pytest.fixture(scope="module")
def running(
    request: pytest.FixtureRequest,
    postgres_settings: Settings,
    kafka_settings: Settings,
    s3_settings: Settings,
    triton_settings: Settings,
) -> Iterator[Settings]:
    """The loop's services (the module's `LOOP_SERVICES`, else cvloop.demo.loop.SERVICES); stopped when the
    module ends (the local broker takes one member per consumer group, so other modules' workers join
    after)."""
    settings = triton_settings.model_copy(
        update={"pipeline_outbox_retry_s": 0.5, "serving_reconcile_interval_s": 0.5}
    )
    services = getattr(request.module, "LOOP_SERVICES", SERVICES)
    for health in stack.up(settings, services):
        assert health.state == "healthy", health
    try:
        yield settings
    finally:
        for _ in stack.down(settings, services):
            pass
