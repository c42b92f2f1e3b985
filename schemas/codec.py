"""Which events each topic carries, and one decoder for all of them."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from .deadletter import DeadLetter
from .events import (
    ApiKeyChanged,
    AssetSubmitted,
    DeploymentUpdated,
    DriftReported,
    JobRequested,
    OutlierScored,
    PredictionLogged,
    PredictionReviewed,
    RawPrediction,
    ShadowReplayed,
    TrainingFinished,
    TrainingRequested,
)
from .predictions import DetectionType
from .topics import Topic

TOPIC_EVENTS: dict[Topic, tuple[type[BaseModel], ...]] = {
    Topic.PREDICTIONS_RAW: (RawPrediction,),
    Topic.PREDICTIONS: (PredictionLogged,),
    Topic.SCORES: (OutlierScored, DriftReported),
    Topic.REVIEWS: (PredictionReviewed, ShadowReplayed),
    Topic.FEEDBACK: (AssetSubmitted,),
    Topic.TRAINING: (TrainingRequested, TrainingFinished),
    Topic.DEPLOYMENTS: (DeploymentUpdated,),
    Topic.JOBS: (JobRequested,),
    Topic.API_KEYS: (ApiKeyChanged,),
    Topic.DEADLETTER: (DeadLetter,),
}
# The `type` values tagging union members: pydantic puts them in an error's location, where they name
# no field, so `describe` leaves them out.
_UNION_TAGS = frozenset(
    {str(model.model_fields["type"].default) for models in TOPIC_EVENTS.values() for model in models}
    | {str(kind) for kind in DetectionType}
)


@cache
def _adapter(topic: Topic) -> TypeAdapter[Any]:
    """Built on first use: building every adapter at import would slow each process that only needs
    the registry."""
    models = TOPIC_EVENTS[topic]
    if len(models) == 1:
        return TypeAdapter(models[0])
    union = models[0]
    for model in models[1:]:
        union = union | model  # type: ignore[assignment]
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


def decode(topic: str, value: bytes | str) -> Any:
    """Parse a message of `topic` into its event; raises ValidationError naming the failing field."""
    return _adapter(Topic(topic)).validate_json(value)


def field_path(loc: tuple[int | str, ...]) -> str:
    """`("champion", "prediction", "detection", "scores", 1)` -> `champion.prediction.scores[1]`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _UNION_TAGS:
            path += f".{part}" if path else part
    return path


def describe(error: ValidationError) -> str:
    """One line per problem, each starting with the path of the field at fault."""
    lines = []
    for problem in error.errors(include_url=False):
        path = field_path(problem["loc"])
        # Cross-field checks raise ValueError("<field path> ...") from a model validator, which has no loc.
        message = str(problem["ctx"]["error"]) if problem["type"] == "value_error" else problem["msg"]
        lines.append(f"{path}: {message}" if path else message)
    return "; ".join(lines)
