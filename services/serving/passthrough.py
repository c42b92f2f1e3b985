"""KServe v2 passthrough: tensor requests for a deployment go to its champion on Triton unchanged (JSON
or binary tensor extension) and come back exactly as Triton answered; the shadow gets a copy in the
background within its budget (latency and errors counted; no `predictions` event, as there is no image).
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from fastapi import Response

from . import metrics
from .router import Router
from .routing import Route, ServedModel

logger = logging.getLogger(__name__)

# Headers that describe the body and must travel with it, both ways.
BODY_HEADERS = ("content-type", "inference-header-content-length", "content-encoding")


def _body_headers(headers: httpx.Headers | dict[str, str]) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    return {name: lowered[name] for name in BODY_HEADERS if name in lowered}


class Passthrough:
    def __init__(self, router: Router, http: httpx.AsyncClient, shadow_budget_s: float) -> None:
        self.router = router
        self.http = http
        self.shadow_budget_s = shadow_budget_s
        self._mirrors: set[asyncio.Task[None]] = set()

    async def _forward(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        return await self.http.request(method, path, content=body, headers=headers)

    async def infer(self, route: Route, body: bytes, headers: dict[str, str]) -> Response:
        assert route.champion is not None  # checked by the caller
        forwarded = _body_headers(headers)
        deployment = str(route.state.deployment_id)
        with self.router.lease(route):
            if route.shadow is not None:
                self._mirror(route, route.shadow, body, forwarded)
            started = time.perf_counter()
            answer = await self._forward(
                "POST", f"/v2/models/{route.champion.triton_name}/infer", body, forwarded
            )
        version = str(route.champion.model_version_id)
        if answer.status_code == 200:
            metrics.INFERENCE_SECONDS.labels(deployment, "champion", version).observe(
                time.perf_counter() - started
            )
        else:
            metrics.INFERENCE_ERRORS.labels(deployment, "champion", version).inc()
        return Response(answer.content, status_code=answer.status_code, headers=_body_headers(answer.headers))

    def _mirror(self, route: Route, shadow: ServedModel, body: bytes, headers: dict[str, str]) -> None:
        self.router.acquire(route)
        task = asyncio.get_running_loop().create_task(self._shadow(route, shadow, body, headers))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _shadow(self, route: Route, shadow: ServedModel, body: bytes, headers: dict[str, str]) -> None:
        deployment = str(route.state.deployment_id)
        version = str(shadow.model_version_id)
        metrics.SHADOW_IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.shadow_budget_s):
                answer = await self._forward("POST", f"/v2/models/{shadow.triton_name}/infer", body, headers)
            if answer.status_code == 200:
                metrics.INFERENCE_SECONDS.labels(deployment, "shadow", version).observe(
                    time.perf_counter() - started
                )
            else:
                metrics.INFERENCE_ERRORS.labels(deployment, "shadow", version).inc()
        except TimeoutError:
            metrics.SHADOW_DROPPED.labels(deployment, "budget").inc()
        except httpx.HTTPError:
            metrics.INFERENCE_ERRORS.labels(deployment, "shadow", version).inc()
        finally:
            metrics.SHADOW_IN_FLIGHT.dec()
            self.router.release(route)

    async def metadata(self, model: ServedModel, suffix: str = "") -> Response:
        answer = await self._forward("GET", f"/v2/models/{model.triton_name}{suffix}", None, {})
        return Response(answer.content, status_code=answer.status_code, headers=_body_headers(answer.headers))

    async def drain(self) -> None:
        if self._mirrors:
            await asyncio.gather(*self._mirrors, return_exceptions=True)
