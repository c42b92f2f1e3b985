"""KServe v2 passthrough: tensor requests for a deployment go to its champion on Triton unchanged (JSON
or binary tensor extension) and come back exactly as Triton answered; the shadow gets a copy in the
background within its budget (latency and errors counted; no `predictions` event, as there is no image).
"""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import Response

from . import metrics
from .router import Router
from .routing import Route, ServedModel

# Headers that describe a body and travel with it, both ways; the bytes are passed on as they came
# (compressed ones too), so the client decodes exactly what Triton encoded. Triton matches header names
# case-sensitively, so they are sent in its spelling.
BODY_HEADERS = ("Content-Type", "Inference-Header-Content-Length", "Content-Encoding")
REQUEST_HEADERS = (*BODY_HEADERS, "Accept-Encoding")


def _pick(headers: httpx.Headers | dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    return {name: lowered[name.lower()] for name in names if name.lower() in lowered}


class Passthrough:
    def __init__(self, router: Router, http: httpx.AsyncClient, shadow_budget_s: float) -> None:
        self.router = router
        self.http = http
        self.shadow_budget_s = shadow_budget_s
        self._mirrors: set[asyncio.Task[None]] = set()

    async def _forward(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        """Triton's answer as it sent it (no decompression on the way)."""
        request = self.http.build_request(
            method, path, content=body, headers={"Accept-Encoding": "identity", **headers}
        )
        answer = await self.http.send(request, stream=True)
        try:
            content = b"".join([chunk async for chunk in answer.aiter_raw()])
        finally:
            await answer.aclose()
        return Response(content, status_code=answer.status_code, headers=_pick(answer.headers, BODY_HEADERS))

    async def infer(self, route: Route, body: bytes, headers: dict[str, str]) -> Response:
        assert route.champion is not None  # checked by the caller
        forwarded = _pick(headers, REQUEST_HEADERS)
        deployment = str(route.state.deployment_id)
        version = str(route.champion.model_version_id)
        with self.router.lease(route):
            if route.shadow is not None:
                self._mirror(route, route.shadow, body, forwarded)
            started = time.perf_counter()
            answer = await self._forward(
                "POST", f"/v2/models/{route.champion.triton_name}/infer", body, forwarded
            )
        if answer.status_code == 200:
            metrics.INFERENCE_SECONDS.labels(deployment, "champion", version).observe(
                time.perf_counter() - started
            )
        else:
            metrics.INFERENCE_ERRORS.labels(deployment, "champion", version).inc()
        return answer

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
        return await self._forward("GET", f"/v2/models/{model.triton_name}{suffix}", None, {})

    async def drain(self) -> None:
        if self._mirrors:
            await asyncio.gather(*self._mirrors, return_exceptions=True)
