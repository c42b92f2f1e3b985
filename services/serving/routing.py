"""Where a deployment's requests go (pure): its champion and shadow as loaded Triton models, and the
in-flight count of each Triton model, so a model leaves Triton only once no request uses it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from schemas.events import DeploymentKind, DeploymentUpdated
from schemas.model_io import ModelIO
from schemas.predictions import DetectionType
from schemas.vocabulary import OutputFormat
from services.common.domain.model_signature import TensorSpec


@dataclass(frozen=True)
class ServedModel:
    """A model version loaded on Triton, with what serving needs to call it and read its answer."""

    model_version_id: UUID
    triton_name: str
    io: ModelIO
    labels: tuple[str, ...]
    output_format: OutputFormat
    input: TensorSpec
    outputs: tuple[str, ...]  # the tensor of each role, in model_signature.roles order


@dataclass(frozen=True)
class DeploymentState:
    """What the deployment should serve: the `deployments` topic's event, or a Postgres row."""

    deployment_id: UUID
    project_id: UUID
    kind: DeploymentKind
    detection_type: DetectionType
    confidence_threshold: float
    champion_id: UUID | None
    shadow_id: UUID | None

    @classmethod
    def from_event(cls, event: DeploymentUpdated, project_id: UUID) -> DeploymentState:
        return cls(
            deployment_id=event.deployment_id,
            project_id=project_id,
            kind=event.kind,
            detection_type=event.detection_type,
            confidence_threshold=event.confidence_threshold,
            champion_id=event.champion_model_version_id,
            shadow_id=event.shadow_model_version_id,
        )


@dataclass(frozen=True)
class Route:
    """A deployment's routing at one moment; a request keeps the Route it started with."""

    state: DeploymentState
    champion: ServedModel | None = None
    champion_error: str | None = None  # why the champion is not loaded
    shadow: ServedModel | None = None
    shadow_error: str | None = None  # why the shadow is not loaded (only with a shadow configured)
    retry: bool = False  # a model failed for a reason that may pass (Triton or the store unreachable)
    triton_unreachable: bool = False  # the champion failed because Triton could not be reached

    @property
    def models(self) -> tuple[ServedModel, ...]:
        return tuple(m for m in (self.champion, self.shadow) if m is not None)


class ModelLeases:
    """Counts the requests using each Triton model; a model no route needs any more is unloaded when
    its last request ends (not before: it would fail that request)."""

    def __init__(self) -> None:
        self._in_use: Counter[str] = Counter()
        self._retired: set[str] = set()

    def acquire(self, names: Iterable[str]) -> None:
        self._in_use.update(names)

    def release(self, names: Iterable[str]) -> list[str]:
        """The retired models this release leaves unused: unload them now."""
        unload = []
        for name in names:
            self._in_use[name] -= 1
            if self._in_use[name] <= 0:
                del self._in_use[name]
                if name in self._retired:
                    self._retired.discard(name)
                    unload.append(name)
        return unload

    def retire(self, names: Iterable[str], still_needed: set[str]) -> list[str]:
        """Mark models that no route needs; returns those unused now (unload them now). A model needed
        again before its last request ends stays loaded."""
        self._retired -= still_needed
        unload = []
        for name in set(names) - still_needed:
            if self._in_use[name] > 0:
                self._retired.add(name)
            else:
                self._in_use.pop(name, None)
                unload.append(name)
        return unload

    def in_use(self, name: str) -> int:
        return self._in_use[name]
