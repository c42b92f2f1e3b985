"""What the SDK raises: one exception per 4xx status the contract answers, carrying the server's
`detail` and `errors` (services/common/http.py's format), and one for servers that stay unavailable."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx


class CvloopError(Exception):
    """Anything the SDK raises on purpose."""


class ApiError(CvloopError):
    """The server refused the request; `detail` says why and `errors` names the fields at fault."""

    status_code: ClassVar[int | None] = None

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        where = f"{method} {url} -> " if method else ""
        super().__init__(f"{where}{status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.body = body or {}
        self.method = method
        self.url = url

    @property
    def fields(self) -> list[str]:
        """The field paths the server named (`body.name`, `query.limit`, ...)."""
        return [e.get("field", "") for e in self.errors if e.get("field")]


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    """No key, or a key the server does not know."""

    status_code = 401


class Forbidden(ApiError):
    """The key lacks the scope (read, write, admin) the route needs."""

    status_code = 403


class NotFound(ApiError):
    """Missing, or another project's."""

    status_code = 404


class Conflict(ApiError):
    """A name or image already there, or an illegal state change; `body` may hold the existing id."""

    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class UnsupportedMediaType(ApiError):
    """The file is not an image the server can decode."""

    status_code = 415


class Unprocessable(ApiError):
    """The body or query is invalid; `errors` names each field."""

    status_code = 422


class ServerError(ApiError):
    """A 5xx that was still there after the retries (or that could not be retried safely)."""


class ServiceUnavailable(CvloopError):
    """The service could not be reached, or dropped the connection, and no retry was left or allowed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        Unprocessable,
    )
    if cls.status_code is not None
}


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_for(response: httpx.Response) -> ApiError:
    """The exception matching a 4xx or 5xx response; unknown statuses get the base class."""
    body = _body(response)
    detail = body.get("detail")
    if not isinstance(detail, str):  # a plain FastAPI error keeps its detail as a list or object
        detail = str(detail) if detail is not None else (response.text[:500] or response.reason_phrase)
    errors = body.get("errors")
    if not isinstance(errors, list):
        errors = []
    status = response.status_code
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, ApiError)
    return cls(
        status,
        detail,
        errors,
        body,
        method=response.request.method,
        url=str(response.request.url),
    )
