"""The routing table: every deployment's Route, built from Postgres at start and rebuilt from each
`deployments` event; models no route needs leave Triton once their last request ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from schemas.events import DeploymentKind
from services.common.domain.model_signature import Unservable

from . import metrics
from .models import ModelLoader
from .routing import DeploymentState, ModelLeases, Route, ServedModel
from .triton import TritonError, TritonUnavailable

logger = logging.getLogger(__name__)


class Router:
    def __init__(self, loader: ModelLoader) -> None:
        self.loader = loader
        self.routes: dict[UUID, Route] = {}
        self.leases = ModelLeases()
        self._lock = asyncio.Lock()  # one routing change at a time
        self._unloads: set[asyncio.Task[None]] = set()

    def route(self, deployment_id: UUID) -> Route | None:
        return self.routes.get(deployment_id)

    def acquire(self, route: Route) -> None:
        """Keep the route's models on Triton until `release`: a request uses them."""
        self.leases.acquire(m.triton_name for m in route.models)

    def release(self, route: Route) -> None:
        self._unload(self.leases.release(m.triton_name for m in route.models))

    @contextmanager
    def lease(self, route: Route) -> Iterator[Route]:
        self.acquire(route)
        try:
            yield route
        finally:
            self.release(route)

    async def _resolve(
        self, state: DeploymentState, model_version_id: UUID
    ) -> tuple[ServedModel | None, str | None, bool]:
        """(the loaded model, None, False), or (None, why not, whether trying again may help)."""
        try:
            model = await self.loader.ensure_loaded(state.project_id, model_version_id, state.detection_type)
            metrics.MODEL_LOADS.labels("load", "ok").inc()
            return model, None, False
        except Unservable as exc:
            metrics.MODEL_LOADS.labels("load", "unservable").inc()
            return None, f"model version {model_version_id} cannot be served: {exc}", False
        except TritonError as exc:
            metrics.MODEL_LOADS.labels("load", "failed").inc()
            if isinstance(exc, TritonUnavailable):
                metrics.TRITON_UNAVAILABLE.inc()
            return None, f"model version {model_version_id} is not loaded: {exc}", True
        except Exception as exc:  # Postgres or the store unreachable: the reconciler tries again
            metrics.MODEL_LOADS.labels("load", "failed").inc()
            logger.warning(
                "model load failed", extra={"model_version": str(model_version_id), "error": str(exc)}
            )
            return (
                None,
                f"model version {model_version_id} is not loaded: {exc.__class__.__name__}: {exc}",
                True,
            )

    async def _build(self, state: DeploymentState) -> Route:
        if state.kind != DeploymentKind.SERVED:
            return Route(state)
        if state.champion_id is None:
            return Route(state, champion_error="the deployment has no champion model version")
        champion, champion_error, retry = await self._resolve(state, state.champion_id)
        shadow, shadow_error, shadow_retry = None, None, False
        if state.shadow_id is not None:
            shadow, shadow_error, shadow_retry = await self._resolve(state, state.shadow_id)
        unreachable = champion is None and retry and not await self.loader.triton.server_ready()
        return Route(
            state, champion, champion_error, shadow, shadow_error, retry or shadow_retry, unreachable
        )

    async def apply(self, state: DeploymentState) -> Route:
        """Route the deployment as `state` says; requests already running keep their route."""
        async with self._lock:
            route = await self._build(state)
            self._replace(state.deployment_id, route)
        logger.info(
            "deployment routed",
            extra={
                "deployment": str(state.deployment_id),
                "champion": str(state.champion_id),
                "shadow": str(state.shadow_id),
                "champion_error": route.champion_error,
                "shadow_error": route.shadow_error,
            },
        )
        return route

    async def remove(self, deployment_id: UUID) -> None:
        async with self._lock:
            self._replace(deployment_id, None)

    def _replace(self, deployment_id: UUID, route: Route | None) -> None:
        previous = self.routes.pop(deployment_id, None)
        if route is not None:
            self.routes[deployment_id] = route
        if previous is not None:
            needed = {m.triton_name for r in self.routes.values() for m in r.models}
            self._unload(self.leases.retire([m.triton_name for m in previous.models], needed))

    async def reconcile(self) -> None:
        """Rebuild the routes whose models failed to load for a passing reason, or that Triton lost."""
        for route in list(self.routes.values()):
            lost = False
            if not route.retry:
                try:
                    lost = not all([await self.loader.model_ready(m) for m in route.models])
                except TritonError:
                    lost = True
            if (route.retry or lost) and self.routes.get(route.state.deployment_id) is route:
                await self.apply(route.state)

    def _unload(self, names: list[str]) -> None:
        for name in names:
            task = asyncio.get_running_loop().create_task(self._unload_one(name))
            self._unloads.add(task)
            task.add_done_callback(self._unloads.discard)

    async def _unload_one(self, name: str) -> None:
        if self.leases.in_use(name) or any(
            m.triton_name == name for r in self.routes.values() for m in r.models
        ):
            return  # routed again since it was retired
        try:
            await self.loader.unload(name)
            metrics.MODEL_LOADS.labels("unload", "ok").inc()
        except TritonError as exc:
            metrics.MODEL_LOADS.labels("unload", "failed").inc()
            logger.warning("model unload failed", extra={"model": name, "error": str(exc)})

    async def drain(self) -> None:
        if self._unloads:
            await asyncio.gather(*self._unloads, return_exceptions=True)
