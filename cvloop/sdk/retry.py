"""When the SDK sends a request again, and how long it waits first (pure: no I/O here).

The policy:
- a connection that could not be opened (refused, connect timeout, no pooled connection) is retried
  for every method: the server never saw the request;
- a 5xx answer, or a failure after the request may have reached the server (read timeout, dropped
  connection), is retried only for a *replayable* request: GET, HEAD, OPTIONS, PUT, DELETE and PATCH
  (the contract's PATCHes set a flag to a value, so sending one twice changes nothing), and the POSTs
  the contract makes idempotent (uploads are content-addressed; the monitor endpoint answers 409 with
  the existing prediction id for an image it already has, which the SDK then reads as its own success;
  a submission naming its predictions answers the same again and changes nothing);
- any other POST (create a model, submit, predict) is not replayed: sending it twice could create twice;
- delays grow exponentially from `backoff`, capped at `max_delay`, with +-`jitter` so clients that
  failed together do not come back together; a `Retry-After` header lengthens the delay, within the cap.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

REPLAYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})

# The request never left this machine: safe to send again whatever it does.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    backoff: float = 0.25  # seconds before the first retry
    multiplier: float = 2.0
    max_delay: float = 8.0
    jitter: float = 0.2  # fraction of the delay added or removed at random

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.backoff < 0 or self.max_delay < 0 or not 0 <= self.jitter < 1:
            raise ValueError("backoff and max_delay must be >= 0 and jitter in [0, 1)")

    def delay(
        self, retry: int, retry_after: float | None = None, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        base = min(self.max_delay, self.backoff * self.multiplier**retry)
        if retry_after is not None:
            base = min(self.max_delay, max(base, retry_after))
        return base * (1.0 + self.jitter * (2.0 * rand() - 1.0))


NO_RETRY = RetryPolicy(attempts=1)


def is_replayable(method: str, idempotent_post: bool = False) -> bool:
    return method.upper() in REPLAYABLE_METHODS or idempotent_post


def should_retry_error(error: Exception, replayable: bool) -> bool:
    """Whether a transport failure deserves another try."""
    if isinstance(error, NOT_SENT_ERRORS):
        return True
    return replayable and isinstance(error, httpx.TransportError)


def should_retry_status(status: int, replayable: bool) -> bool:
    """Whether an answer deserves another try: a 5xx for a replayable request, nothing else."""
    return replayable and status >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (its HTTP-date form is ignored: servers here send seconds)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
