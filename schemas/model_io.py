"""How a model version's tensors relate to images and predictions: what serving needs to call it.

Stored with the model version (`io`); a model version without it can be registered and monitored but
not served.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .limits import Finite, Line

TensorName = Annotated[Line, Field(min_length=1, max_length=256)]


class ModelIO(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Preprocessing: decoded RGB pixels -> the model's input tensor (batch dimension first).
    width: int = Field(gt=0, le=8192, description="Input width the image is resized to.")
    height: int = Field(gt=0, le=8192, description="Input height the image is resized to.")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color: Literal["rgb", "bgr", "gray"] = "rgb"
    dtype: Literal["float32", "uint8"] = "float32"
    scale: Finite = Field(1.0 / 255.0, gt=0.0, description="Pixels are multiplied by this first.")
    mean: tuple[Finite, ...] = Field(
        (0.0,), max_length=3, description="Subtracted per channel after scaling (1 or 3)."
    )
    std: tuple[Finite, ...] = Field(
        (1.0,), max_length=3, description="Divided per channel after the mean (1 or 3)."
    )

    # Postprocessing: output tensors -> a prediction of the deployment's detection type.
    scores_are_logits: bool = Field(
        False, description="Classification: apply a softmax to the scores output first."
    )
    box_format: Literal["xyxy_normalized", "xyxy_input_pixels"] = Field(
        "xyxy_normalized", description="Detection: how the boxes output is expressed."
    )
    outputs: dict[TensorName, TensorName] = Field(
        max_length=16,
        default_factory=dict,
        description="Output tensor name by role (`scores`; and `boxes`, `classes` for detection). "
        "Empty: the model's outputs in graph order.",
    )

    @model_validator(mode="after")
    def _channels(self) -> Self:
        channels = 1 if self.color == "gray" else 3
        for name in ("mean", "std"):
            if len(getattr(self, name)) not in (1, channels):
                raise ValueError(f"{name} must have 1 or {channels} values for color {self.color}")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not contain 0")
        return self
