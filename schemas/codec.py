"""Which events each topic carries, and one decoder for all of them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from .deadletter import DeadLetter
from .events import (
    AssetSubmitted,
    DeploymentUpdated,
    DriftReported,
    JobRequested,
    OutlierScored,
    PredictionLogged,
    PredictionReviewed,
    RawPrediction,
    TrainingFinished,
    TrainingRequested,
)
from .topics import TOPICS, Topic

TOPIC_EVENTS: dict[Topic, tuple[type[BaseModel], ...]] = {
    Topic.PREDICTIONS_RAW: (RawPrediction,),
    Topic.PREDICTIONS: (PredictionLogged,),
    Topic.SCORES: (OutlierScored, DriftReported),
    Topic.REVIEWS: (PredictionReviewed,),
    Topic.FEEDBACK: (AssetSubmitted,),
    Topic.TRAINING: (TrainingRequested, TrainingFinished),
    Topic.DEPLOYMENTS: (DeploymentUpdated,),
    Topic.JOBS: (JobRequested,),
    Topic.DEADLETTER: (DeadLetter,),
}
assert set(TOPIC_EVENTS) == set(TOPICS), "every registry topic declares its events"


def _adapter(models: tuple[type[BaseModel], ...]) -> TypeAdapter[Any]:
    if len(models) == 1:
        return TypeAdapter(models[0])
    union = models[0]
    for model in models[1:]:
        union = union | model  # type: ignore[assignment]
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


_ADAPTERS: dict[Topic, TypeAdapter[Any]] = {topic: _adapter(models) for topic, models in TOPIC_EVENTS.items()}


def decode(topic: str, value: bytes | str) -> Any:
    """Parse a message of `topic` into its event; raises ValidationError naming the failing field."""
    return _ADAPTERS[Topic(topic)].validate_json(value)


def describe(error: ValidationError) -> str:
    """One line per problem, each starting with the dotted path of the field at fault."""
    lines = []
    for problem in error.errors(include_url=False):
        path = ".".join(str(part) for part in problem["loc"])
        # Cross-field checks raise ValueError("<field path> ...") from a model validator, which has no loc.
        message = str(problem["ctx"]["error"]) if problem["type"] == "value_error" else problem["msg"]
        lines.append(f"{path}: {message}" if path else message)
    return "; ".join(lines)
