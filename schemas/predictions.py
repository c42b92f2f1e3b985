"""Predictions of the three detection types, as a model answers and as a reviewer corrects them.

Shapes are parallel lists (one class and one score per shape), like the tensors a model returns.
Coordinates are pixels of the original image: boxes `[xmin, ymin, xmax, ymax]`, polygons `[[x, y], ...]`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .limits import Finite, Line

Score = Annotated[float, Field(ge=0.0, le=1.0)]
Label = Annotated[Line, Field(min_length=1, max_length=256)]
Box = tuple[Finite, Finite, Finite, Finite]
Point = tuple[Finite, Finite]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=10_000)]
MAX_SHAPES = 10_000  # classes (and shapes) of one prediction


class DetectionType(StrEnum):
    CLASSIFICATION = "classification"
    DETECTION = "detection"
    SEGMENTATION = "segmentation"


class _Prediction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    SHAPES: ClassVar[str | None] = None  # the field holding one shape per class, if the type has shapes

    classes: list[Label] = Field(max_length=MAX_SHAPES)
    scores: list[Score] = Field(max_length=MAX_SHAPES)

    def _check_parallel(self, **shapes: list) -> None:
        for name, values in {"scores": self.scores, **shapes}.items():
            if len(values) != len(self.classes):
                raise ValueError(f"{name} has {len(values)} entries but classes has {len(self.classes)}")

    def check_inside(self, width: int, height: int) -> None:
        """Raise ValueError when a shape leaves the image; nothing to check for classification."""

    def above_threshold(self, threshold: float) -> Self:
        """The prediction without the shapes scored under the deployment's confidence threshold."""
        if self.SHAPES is None:  # a classification answers with every class: no threshold applies
            return self
        keep = [i for i, score in enumerate(self.scores) if score >= threshold]
        parallel = ("classes", "scores", self.SHAPES)
        return self.model_copy(update={name: [getattr(self, name)[i] for i in keep] for name in parallel})


class ClassificationPrediction(_Prediction):
    type: Literal["classification"] = "classification"

    @model_validator(mode="after")
    def _parallel(self) -> Self:
        self._check_parallel()
        return self


class DetectionPrediction(_Prediction):
    SHAPES = "boxes"
    type: Literal["detection"] = "detection"
    boxes: list[Box]

    @model_validator(mode="after")
    def _valid_boxes(self) -> Self:
        self._check_parallel(boxes=self.boxes)
        for i, (xmin, ymin, xmax, ymax) in enumerate(self.boxes):
            if xmin > xmax or ymin > ymax:
                raise ValueError(
                    f"boxes[{i}] must be [xmin, ymin, xmax, ymax] with xmin <= xmax and ymin <= ymax"
                )
        return self

    def check_inside(self, width: int, height: int) -> None:
        for i, (xmin, ymin, xmax, ymax) in enumerate(self.boxes):
            if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
                raise ValueError(f"boxes[{i}] leaves the {width}x{height} image")


class SegmentationPrediction(_Prediction):
    SHAPES = "polygons"
    type: Literal["segmentation"] = "segmentation"
    polygons: list[Polygon]

    @model_validator(mode="after")
    def _parallel(self) -> Self:
        self._check_parallel(polygons=self.polygons)
        return self

    def check_inside(self, width: int, height: int) -> None:
        for i, polygon in enumerate(self.polygons):
            if any(x < 0 or y < 0 or x > width or y > height for x, y in polygon):
                raise ValueError(f"polygons[{i}] leaves the {width}x{height} image")


Prediction = Annotated[
    ClassificationPrediction | DetectionPrediction | SegmentationPrediction,
    Field(discriminator="type"),
]
