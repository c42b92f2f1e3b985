"""The monitor endpoint's and `predictions.raw`'s shared rules, without I/O."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from schemas.api.ingest import MonitorFields, MonitorPrediction
from schemas.envelope import Event
from schemas.events import DeploymentKind, PredictionLogged, PredictionSource, RawPrediction, RoleResult
from schemas.features import IMAGE_FEATURES
from schemas.predictions import ClassificationPrediction, DetectionPrediction, DetectionType
from services.common.domain.deployments import Deployment
from services.common.kafka.producer import keyed_partitioner
from services.ingest import images, intake
from services.ingest.intake import Refused
from tests.samples import deployment_record as deployment

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SHA = hashlib.sha256(b"frame").hexdigest()
KEY = f"images/{SHA[:2]}/{SHA}.png"


def boxes(*scores: float) -> DetectionPrediction:
    return DetectionPrediction(
        boxes=[(1.0, 1.0, 10.0, 10.0)] * len(scores), classes=["car"] * len(scores), scores=list(scores)
    )


def item(**overrides: Any) -> MonitorPrediction:
    fields: dict[str, Any] = {
        "image_object_key": KEY,
        "width": 64,
        "height": 48,
        "champion": RoleResult(prediction=boxes(0.9, 0.4), latency_ms=12),
        "shadow": RoleResult(prediction=boxes(0.3), latency_ms=15),
        "source": "edge-7",
        "tags": ["night", "night", "cam-2"],
        "metadata": {"site": "north"},
    }
    return MonitorPrediction(**(fields | overrides))


def build(
    monitored: MonitorPrediction, target: Deployment, pixels: np.ndarray | None = None
) -> PredictionLogged:
    return intake.build_event(
        monitored,
        target,
        images.reference(KEY, monitored.width, monitored.height, {KEY}),
        pixels,
        prediction_id=uuid4(),
        event_id=uuid4(),
        source=PredictionSource.MONITOR_API,
        now=NOW,
    )


def test_a_monitor_body_holds_what_a_raw_message_holds_without_its_envelope() -> None:
    envelope = set(Event.model_fields) | {"type"}
    assert set(MonitorPrediction.model_fields) == set(RawPrediction.model_fields) - envelope
    assert set(MonitorPrediction.model_fields) - set(MonitorFields.model_fields) == {
        "image_object_key",
        "image_base64",
    }


def test_a_monitor_body_carries_exactly_one_image() -> None:
    with pytest.raises(ValidationError, match="exactly one of image_object_key and image_base64"):
        item(image_object_key=None)
    with pytest.raises(ValidationError, match="exactly one"):
        item(image_base64="aGVsbG8=")


def test_shapes_under_the_threshold_are_dropped_and_model_versions_filled_in() -> None:
    target = deployment(threshold=0.5)
    event = build(item(), target)
    assert event.champion.prediction.scores == [0.9]
    assert event.shadow is not None and event.shadow.prediction.scores == []
    assert event.champion.model_version_id == target.champion_model_version_id
    assert event.shadow.model_version_id == target.shadow_model_version_id
    assert event.detection_type is DetectionType.DETECTION
    assert event.tags == ["night", "cam-2"]
    assert event.metadata == {"site": "north", "source": "edge-7"}
    assert event.predicted_at == NOW
    # What ingest builds without validating is what validation accepts.
    assert type(event).model_validate_json(event.model_dump_json()) == event


def test_a_given_model_version_is_kept() -> None:
    given = uuid4()
    event = build(
        item(champion=RoleResult(model_version_id=given, prediction=boxes(0.9), latency_ms=1)), deployment()
    )
    assert event.champion.model_version_id == given


def test_classification_keeps_every_class() -> None:
    target = deployment(detection_type=DetectionType.CLASSIFICATION, threshold=0.9)
    scores = ClassificationPrediction(classes=["cat", "dog"], scores=[0.6, 0.4])
    event = build(item(champion=RoleResult(prediction=scores, latency_ms=1), shadow=None), target)
    assert event.champion.prediction.scores == [0.6, 0.4]
    assert set(event.features) == {"top1_confidence", "top1_margin", "score_entropy"}


def test_image_features_only_with_the_pixels() -> None:
    pixels = np.full((48, 64, 3), 128, dtype=np.uint8)
    with_pixels = build(item(), deployment(), pixels)
    assert set(IMAGE_FEATURES) <= set(with_pixels.features)
    assert with_pixels.features["shape_count"] == 1.0
    assert set(build(item(), deployment()).features) == {"shape_count", "mean_score"}


def test_a_served_deployment_refuses() -> None:
    with pytest.raises(Refused) as refused:
        intake.check_deployment(item(), deployment(kind=DeploymentKind.SERVED))
    assert (refused.value.status_code, refused.value.field) == (409, "deployment_id")


@pytest.mark.parametrize("role", ["champion", "shadow"])
def test_a_prediction_of_another_type_names_its_field(role: str) -> None:
    other = RoleResult(prediction=ClassificationPrediction(classes=["a"], scores=[1.0]), latency_ms=1)
    with pytest.raises(Refused) as refused:
        intake.check_deployment(item(**{role: other}), deployment())
    assert (refused.value.status_code, refused.value.field) == (422, f"{role}.prediction.type")
    assert str(refused.value).startswith(f"{role}.prediction.type: is classification")


def test_the_stated_size_must_be_the_images() -> None:
    ref = images.reference(KEY, 32, 32, {KEY})
    with pytest.raises(Refused) as refused:
        intake.check_image_size(item(), ref)
    assert refused.value.field == "width"


def test_raw_ids_are_derived_from_the_message() -> None:
    raw_event = uuid4()
    assert intake.raw_ids(raw_event) == intake.raw_ids(raw_event)
    prediction_id, event_id = intake.raw_ids(raw_event)
    assert prediction_id != event_id
    assert intake.raw_ids(uuid4())[0] != prediction_id


def test_an_object_key_gives_its_format_and_digest() -> None:
    ref = images.reference(KEY, 64, 48, {KEY})
    assert (ref.sha256, ref.content_type, ref.width) == (SHA, "image/png", 64)
    without_extension = f"images/{SHA[:2]}/{SHA}"
    with pytest.raises(Refused) as refused:
        images.reference(without_extension, 64, 48, {without_extension})
    assert refused.value.field == "image_object_key"


def test_a_key_the_project_does_not_own_reads_as_not_uploaded() -> None:
    with pytest.raises(Refused) as refused:
        images.reference(KEY, 64, 48, set())
    assert (refused.value.status_code, refused.value.field) == (422, "image_object_key")
    assert "no uploaded image" in refused.value.message


def test_base64_images() -> None:
    assert images.decode_base64(base64.b64encode(b"\x89PNG").decode(), 100) == b"\x89PNG"
    with pytest.raises(Refused) as not_base64:
        images.decode_base64("%%%", 100)
    assert (not_base64.value.status_code, not_base64.value.field) == (422, "image_base64")
    with pytest.raises(Refused) as too_large:
        images.decode_base64(base64.b64encode(bytes(200)).decode(), 100)
    assert too_large.value.status_code == 413


def test_the_remembered_partition_is_the_default_one() -> None:
    partitions = list(range(6))
    for key in [str(UUID(int=i)).encode() for i in range(50)]:
        assert keyed_partitioner(key, partitions, partitions) == DefaultPartitioner()(
            key, partitions, partitions
        )
