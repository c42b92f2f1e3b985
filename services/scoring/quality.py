"""Inference latency percentiles by role; the quality measures themselves are in
services.common.domain.quality (the api answers them too)."""

from __future__ import annotations

from collections import defaultdict, deque
from uuid import UUID

import numpy as np

from schemas.vocabulary import Role
from services.common.domain.quality import role_quality

__all__ = ["LatencyWindows", "Role", "role_quality"]  # what the stream reads from here


class LatencyWindows:
    """The last `size` inference latencies per deployment and role."""

    def __init__(self, size: int) -> None:
        self._windows: dict[tuple[UUID, Role], deque[float]] = defaultdict(lambda: deque(maxlen=size))

    def add(self, deployment_id: UUID, role: Role, latency_ms: float) -> None:
        self._windows[deployment_id, role].append(latency_ms)

    def percentiles(self, deployment_id: UUID, role: Role) -> tuple[float, float] | None:
        """(p50, p95) in milliseconds, or None before the first latency."""
        window = self._windows.get((deployment_id, role))
        if not window:
            return None
        p50, p95 = np.percentile(np.fromiter(window, dtype=float), [50.0, 95.0])
        return float(p50), float(p95)
