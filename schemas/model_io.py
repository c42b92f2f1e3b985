"""How a model version's tensors relate to images and predictions: what serving needs to call it.

Stored with the model version (`io`); a model version without it can be registered and monitored but
not served.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.predictions import DetectionType
from schemas.vocabulary import OutputFormat, Resize

from .limits import Finite, Line

TensorName = Annotated[Line, Field(min_length=1, max_length=256)]

# The output formats each detection type can be served with; the first is the default (output_format None).
FORMATS: dict[DetectionType, tuple[OutputFormat, ...]] = {
    DetectionType.CLASSIFICATION: (OutputFormat.SOFTMAX, OutputFormat.LOGITS),
    DetectionType.DETECTION: (
        OutputFormat.BOXES_SCORES_CLASSES,
        OutputFormat.YOLO_RAW,
        OutputFormat.NMS_FREE,
        OutputFormat.TORCHVISION,
    ),
    DetectionType.SEGMENTATION: (OutputFormat.YOLO_SEG, OutputFormat.TORCHVISION),
}


class ModelIO(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Preprocessing: decoded RGB pixels -> the model's input tensor (batch dimension first).
    width: int = Field(gt=0, le=8192, description="Input width the image is resized to.")
    height: int = Field(gt=0, le=8192, description="Input height the image is resized to.")
    resize: Resize = Field(Resize.STRETCH, description="stretch, letterbox (YOLO) or center_crop.")
    pad_value: int = Field(114, ge=0, le=255, description="Letterbox: the padding's grey level.")
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
    output_format: OutputFormat | None = Field(
        None,
        description="How the outputs read (docs/models.md). None: softmax for classification, "
        "boxes_scores_classes for detection; segmentation must name one.",
    )
    box_format: Literal["xyxy_normalized", "xyxy_input_pixels"] = Field(
        "xyxy_normalized", description="boxes_scores_classes: how the boxes output is expressed."
    )
    iou_threshold: float = Field(
        0.45, gt=0.0, le=1.0, description="yolo_raw, yolo_seg: boxes of a class overlapping more are one."
    )
    max_detections: int = Field(300, gt=0, le=10_000, description="yolo_raw, yolo_seg: kept after NMS.")
    mask_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="yolo_seg, torchvision: a pixel with a higher mask value is in."
    )
    outputs: dict[TensorName, TensorName] = Field(
        max_length=16,
        default_factory=dict,
        description="Output tensor name by role (the roles of each output format: docs/models.md). "
        "Empty: the model's outputs in graph order.",
    )

    def format_for(self, detection_type: DetectionType) -> OutputFormat:
        """The output format, its default filled in; ValueError when the detection type cannot use it."""
        allowed = FORMATS[detection_type]
        if self.output_format is None:
            if detection_type == DetectionType.SEGMENTATION:
                raise ValueError(f"a segmentation model must name its output_format: one of {list(allowed)}")
            return allowed[0]
        if self.output_format not in allowed:
            raise ValueError(
                f"output_format {self.output_format} does not answer {detection_type}; "
                f"use one of {[str(f) for f in allowed]}"
            )
        return self.output_format

    @model_validator(mode="after")
    def _channels(self) -> Self:
        channels = 1 if self.color == "gray" else 3
        for name in ("mean", "std"):
            if len(getattr(self, name)) not in (1, channels):
                raise ValueError(f"{name} must have 1 or {channels} values for color {self.color}")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not contain 0")
        return self
