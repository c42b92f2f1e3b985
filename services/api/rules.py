"""The control plane's decisions, apart from I/O: what an annotation must fit, which dataset versions a
feedback loop takes, which parameters a processing accepts (what an exported model version inherits is
services/common/domain/model_export.py, shared with the pipeline)."""

from __future__ import annotations

from typing import Any

from schemas.predictions import DetectionType, Prediction
from services.common.domain.registry import DatasetVersion, ModelVersion


def annotation_problem(
    annotation: Prediction, detection_type: DetectionType, width: int, height: int, labels: list[str] | None
) -> tuple[str, str] | None:
    """(sub-field, problem) when the annotation does not fit the dataset version and the image."""
    if annotation.type != detection_type:
        return "type", f"is {annotation.type} but the dataset version holds {detection_type}"
    try:
        annotation.check_inside(width, height)
    except ValueError as exc:
        field, _, problem = str(exc).partition(" ")
        return field, problem
    if labels is not None:
        for i, label in enumerate(annotation.classes):
            if label not in labels:
                return f"classes[{i}]", f"{label!r} is not in the dataset version's labelmap"
    return None


def feedback_mismatch(
    champion: ModelVersion,
    champion_labels: list[str] | None,
    dataset_version: DatasetVersion,
    dataset_labels: list[str] | None,
) -> str | None:
    """Why reviewed predictions of the champion cannot go into this dataset version, or None.

    Labelmaps are compared by their labels in order (a label's position is its class index), so two
    labelmaps with the same labels are the same labelmap."""
    if dataset_version.detection_type != champion.detection_type:
        return (
            f"dataset version {dataset_version.id} holds {dataset_version.detection_type} but the champion "
            f"model version {champion.id} predicts {champion.detection_type}"
        )
    if dataset_labels != champion_labels:
        return (
            f"the labelmap of dataset version {dataset_version.id} ({_labels(dataset_labels)}) differs from "
            f"the champion model version's ({_labels(champion_labels)})"
        )
    return None


def _labels(labels: list[str] | None) -> str:
    return "none" if labels is None else ", ".join(labels)


def unknown_parameters(parameters_schema: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """Parameters the processing's schema does not declare (a schema without `properties` takes any)."""
    declared = parameters_schema.get("properties")
    if not isinstance(declared, dict):
        return []
    return sorted(set(parameters) - set(declared))


def missing_parameters(parameters_schema: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    required = parameters_schema.get("required")
    if not isinstance(required, list):
        return []
    return sorted(str(name) for name in required if name not in parameters)
