"""The monitoring routes' pure parts: the time range a request asks for, and quality per bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from schemas.vocabulary import Role
from services.api.monitoring import MAX_BUCKETS, period, quality_buckets, time_range
from services.common.domain.monitoring import ReviewedAnswer
from services.common.http import ApiError

CAT = {"type": "classification", "classes": ["cat", "dog"], "scores": [0.9, 0.1]}
DOG = {"type": "classification", "classes": ["cat", "dog"], "scores": [0.2, 0.8]}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_range_defaults_to_the_last_day_hourly_and_reads_naive_times_as_utc() -> None:
    span = time_range(period(None, datetime(2026, 1, 2)), 3600)
    assert span.start == T0 and span.end == T0 + timedelta(days=1) and span.buckets == 24
    assert time_range((T0, T0 + timedelta(minutes=90)), 3600).buckets == 2  # a partial last bucket counts


@pytest.mark.parametrize(
    ("start", "end", "bucket_s", "field"),
    [
        (T0, T0, 60, "query.start"),
        (T0 + timedelta(hours=1), T0, 60, "query.start"),
        (T0, T0 + timedelta(seconds=MAX_BUCKETS + 1), 1, "query.bucket_s"),
    ],
)
def test_an_empty_or_too_finely_cut_range_names_the_field(
    start: datetime, end: datetime, bucket_s: int, field: str
) -> None:
    with pytest.raises(ApiError) as refused:
        time_range(period(start, end), bucket_s)
    assert refused.value.status_code == 422 and refused.value.field == field


def test_quality_is_computed_per_bucket_and_role_with_the_versions_that_answered() -> None:
    champion, first_shadow, second_shadow = uuid4(), uuid4(), uuid4()
    later = T0 + timedelta(hours=1)
    answers = [
        ReviewedAnswer(T0, CAT, CAT, champion, DOG, first_shadow),
        ReviewedAnswer(T0, DOG, CAT, champion, DOG, second_shadow),
        ReviewedAnswer(later, DOG, CAT, champion, None, None),
    ]
    buckets = {(b.start, b.role): b for b in quality_buckets(answers)}
    assert set(buckets) == {(T0, Role.CHAMPION), (T0, Role.SHADOW), (later, Role.CHAMPION)}
    assert buckets[T0, Role.CHAMPION].quality == {"accuracy": 0.5, "reviewed": 2.0}
    assert buckets[T0, Role.SHADOW].quality == {"accuracy": 0.5, "reviewed": 2.0}
    assert buckets[T0, Role.SHADOW].model_version_ids == sorted([first_shadow, second_shadow])
    assert buckets[later, Role.CHAMPION].quality == {"accuracy": 0.0, "reviewed": 1.0}
    assert quality_buckets([]) == []
