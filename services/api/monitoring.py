"""The monitoring routes' pure parts: the time range a request asks for, and champion/shadow quality
per bucket from the reviewed predictions of a range."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query

from schemas.api.monitoring import QualityBucket
from schemas.vocabulary import Role
from services.common.domain.monitoring import ReviewedAnswer, TimeRange
from services.common.domain.quality import role_quality, stored_reviewed
from services.common.http import ApiError

DEFAULT_RANGE = timedelta(days=1)
MAX_BUCKETS = 2000


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def period(
    start: Annotated[
        datetime | None, Query(description="Inclusive (ISO 8601; UTC when no offset). Default: end - 1 day.")
    ] = None,
    end: Annotated[datetime | None, Query(description="Exclusive. Default: now.")] = None,
) -> tuple[datetime, datetime]:
    """The [start, end) a monitoring request asks for; 422 naming `query.start` when it is empty."""
    until = _utc(end) if end else datetime.now(UTC)
    since = _utc(start) if start else until - DEFAULT_RANGE
    if since >= until:
        raise ApiError(422, "query.start", "start must be before end")
    return since, until


def time_range(
    bounds: Annotated[tuple[datetime, datetime], Depends(period)],
    bucket_s: Annotated[
        int, Query(ge=1, le=31 * 86400, description=f"Bucket length; at most {MAX_BUCKETS} buckets.")
    ] = 3600,
) -> TimeRange:
    """The period cut into buckets; 422 naming `query.bucket_s` when that makes too many."""
    span = TimeRange(*bounds, timedelta(seconds=bucket_s))
    if span.buckets > MAX_BUCKETS:
        raise ApiError(
            422, "query.bucket_s", f"{span.buckets} buckets: at most {MAX_BUCKETS}; choose a longer bucket"
        )
    return span


def quality_buckets(answers: list[ReviewedAnswer]) -> list[QualityBucket]:
    """Per bucket and role: the versions that answered and their quality against the bucket's reviews."""
    by_bucket: dict[datetime, list[ReviewedAnswer]] = defaultdict(list)
    for answer in answers:
        by_bucket[answer.start].append(answer)
    buckets = []
    for start, group in sorted(by_bucket.items()):
        reviewed = [stored_reviewed(vars(a)) for a in group]
        for role in Role:
            versions: set[UUID | None] = {
                a.champion_model_version_id if role is Role.CHAMPION else a.shadow_model_version_id
                for a in group
                if role is Role.CHAMPION or a.shadow_prediction is not None
            }
            quality = role_quality(reviewed, role)
            if quality:
                buckets.append(
                    QualityBucket(
                        start=start,
                        role=role,
                        model_version_ids=sorted(v for v in versions if v is not None),
                        quality=quality,
                    )
                )
    return buckets
