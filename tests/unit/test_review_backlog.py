"""The review backlog gauge: every status shown for each deployment (zero included), and a deployment's
label sets removed once it has no predicted assets left."""

from __future__ import annotations

from uuid import uuid4

from prometheus_client import CollectorRegistry, Gauge

from schemas.vocabulary import ReviewStatus
from services.api.review_backlog import ShownBacklog, backlog_samples


def test_every_status_of_a_deployment_is_shown_zero_included() -> None:
    first, second = uuid4(), uuid4()
    samples = backlog_samples(
        {
            (first, ReviewStatus.TO_REVIEW): 7,
            (first, ReviewStatus.SUBMITTED): 2,
            (second, ReviewStatus.REVIEWED): 1,
        }
    )
    assert samples == {
        (str(first), "TO_REVIEW"): 7,
        (str(first), "REVIEWED"): 0,
        (str(first), "SUBMITTED"): 2,
        (str(second), "TO_REVIEW"): 0,
        (str(second), "REVIEWED"): 1,
        (str(second), "SUBMITTED"): 0,
    }


def test_no_predicted_assets_show_nothing() -> None:
    assert backlog_samples({}) == {}


def test_shown_counts_follow_the_latest_refresh_and_gone_deployments_disappear() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("backlog", "test", ["deployment", "status"], registry=registry)
    shown = ShownBacklog(gauge)
    kept, gone = str(uuid4()), str(uuid4())

    shown.show({(kept, "TO_REVIEW"): 3, (gone, "TO_REVIEW"): 5})
    shown.show({(kept, "TO_REVIEW"): 1})

    assert registry.get_sample_value("backlog", {"deployment": kept, "status": "TO_REVIEW"}) == 1
    assert registry.get_sample_value("backlog", {"deployment": gone, "status": "TO_REVIEW"}) is None
