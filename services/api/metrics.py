"""Request metrics by route template (bounded: never a path with ids in it), as a plain ASGI middleware
(no per-request task or body copying, unlike Starlette's BaseHTTPMiddleware)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "cvloop_api_requests_total", "HTTP requests answered, by route and status.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "cvloop_api_request_seconds",
    "Time to answer an HTTP request, by route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PREDICTED_ASSETS = Gauge(
    "cvloop_api_predicted_assets",
    "Predicted assets by deployment and review status (TO_REVIEW, REVIEWED, SUBMITTED), counted in Postgres "
    "every few seconds: the review backlog.",
    ["deployment", "status"],
)
UNMEASURED = frozenset({"/metrics", "/healthz", "/readyz"})


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app fails before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router records the matched route in the scope it shares with us.
            template: Any = getattr(scope.get("route"), "path", "unmatched")
            if template not in UNMEASURED:
                LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)
                REQUESTS.labels(scope["method"], template, str(status)).inc()


def install(app: FastAPI) -> None:
    app.add_middleware(RequestMetrics)
