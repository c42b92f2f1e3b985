"""One service's HTTP connection: the key on every request, retries by the policy in retry.py, and
4xx/5xx answers turned into the exceptions of errors.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from .errors import ServiceUnavailable, error_for
from .retry import (
    RetryPolicy,
    is_replayable,
    retry_after_seconds,
    should_retry_error,
    should_retry_status,
)

USER_AGENT = "cvloop-sdk/0.1"


class Transport:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        retry: RetryPolicy,
        timeout: float = 30.0,
        http_transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=http_transport
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent_post: bool = False,
        conflict_after_retry_ok: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send, retrying as the policy allows; raise the matching ApiError for a 4xx/5xx answer.

        conflict_after_retry_ok: a 409 answering a *retry* is the first try's own effect (it reached the
        server before the failure), so it is returned rather than raised."""
        replayable = is_replayable(method, idempotent_post)
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last or not should_retry_error(exc, replayable):
                    raise ServiceUnavailable(f"{method} {self.base_url}{path}: {exc!r}") from exc
                self._sleep(self.retry.delay(attempt))
                continue
            if response.is_success:
                return response
            if response.status_code == 409 and conflict_after_retry_ok and attempt > 0:
                return response
            if not last and should_retry_status(response.status_code, replayable):
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                self._sleep(self.retry.delay(attempt, retry_after))
                continue
            raise error_for(response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return None if response.status_code == 204 or not response.content else response.json()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.json("GET", path, params=_query(params))

    def post(self, path: str, body: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.json("POST", path, json=body, **kwargs)

    def put(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.json("PUT", path, json=body)

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.json("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.json("DELETE", path)


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones (None means: let the server choose)."""
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}
