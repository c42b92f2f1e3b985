from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from schemas import (
    TOPIC_EVENTS,
    TOPICS,
    ClassificationPrediction,
    DetectionPrediction,
    PredictionLogged,
    SegmentationPrediction,
    Topic,
    decode,
    describe,
)
from schemas import jsonschema as generated
from tests import samples


def _topic_of(event: object) -> Topic:
    return next(topic for topic, models in TOPIC_EVENTS.items() if type(event) in models)


@pytest.mark.parametrize("event", samples.all_events(), ids=lambda e: e.type)
def test_every_event_round_trips_through_its_topic(event) -> None:
    decoded = decode(_topic_of(event), event.to_bytes())
    assert decoded == event
    assert type(decoded) is type(event)


def test_every_event_type_has_a_sample() -> None:
    sampled = {type(e) for e in samples.all_events()}
    assert sampled == {model for models in TOPIC_EVENTS.values() for model in models}


@pytest.mark.parametrize("event", samples.all_events(), ids=lambda e: e.type)
def test_generated_json_schema_accepts_the_sample(event) -> None:
    schema = json.loads((generated.JSON_DIR / f"{event.type}.schema.json").read_text())
    jsonschema.validate(json.loads(event.to_bytes()), schema)


def test_json_schema_files_are_fresh() -> None:
    wanted = generated.generate()
    on_disk = {p.name: p.read_text() for p in generated.JSON_DIR.glob("*.schema.json")}
    assert set(on_disk) == set(wanted), "run `python -m schemas.jsonschema`"
    for name, schema in wanted.items():
        assert on_disk[name] == generated.render(schema), (
            f"{name} is stale: run `python -m schemas.jsonschema`"
        )


def test_registry_keys_by_deployment_and_compacts_routing_state() -> None:
    assert set(TOPICS) == set(Topic) == set(TOPIC_EVENTS)
    by_project = {Topic.API_KEYS}  # a key change concerns a project's key, no deployment
    assert all(
        spec.key == "deployment_id"
        for name, spec in TOPICS.items()
        if name not in by_project | {Topic.DEADLETTER}
    )
    assert all(TOPICS[name].key == "project_id" for name in by_project)
    assert TOPICS[Topic.DEPLOYMENTS].kafka_config()["cleanup.policy"] == "compact"


def test_key_is_the_deployment_id() -> None:
    event = samples.prediction_logged()
    assert event.key == str(samples.DEPLOYMENT).encode()


def _error_of(topic: str, payload: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        decode(topic, json.dumps(payload))
    return describe(caught.value)


def test_validation_error_names_the_nested_field() -> None:
    payload = json.loads(samples.prediction_logged().to_bytes())
    payload["champion"]["prediction"]["scores"][1] = 1.7
    assert _error_of("predictions", payload).startswith("champion.prediction.scores[1]:")


def test_missing_field_is_named() -> None:
    payload = json.loads(samples.prediction_logged().to_bytes())
    del payload["image"]["sha256"]
    assert _error_of("predictions", payload) == "image.sha256: Field required"


def test_cross_field_error_names_the_shape() -> None:
    payload = json.loads(samples.prediction_logged().to_bytes())
    payload["champion"]["prediction"]["boxes"][0] = [0, 0, 65, 10]
    assert _error_of("predictions", payload) == "champion.prediction.boxes[0] leaves the 64x48 image"


def test_prediction_type_must_match_the_deployment() -> None:
    payload = json.loads(samples.prediction_logged().to_bytes())
    payload["detection_type"] = "classification"
    assert "champion.prediction.type is detection" in _error_of("predictions", payload)


def test_raw_prediction_needs_exactly_one_image_source() -> None:
    payload = json.loads(samples.all_events()[0].to_bytes())
    payload["image_object_key"] = samples.image().object_key
    assert "exactly one of image_object_key and image_base64" in _error_of("predictions.raw", payload)


def test_unknown_fields_are_refused() -> None:
    payload = json.loads(samples.prediction_logged().to_bytes())
    payload["surprise"] = 1
    assert _error_of("predictions", payload).startswith("surprise:")


@pytest.mark.parametrize(
    ("kind", "fields", "needle"),
    [
        (ClassificationPrediction, {"classes": ["a", "b"], "scores": [0.5]}, "scores has 1 entries"),
        (DetectionPrediction, {"classes": ["a"], "scores": [0.5], "boxes": []}, "boxes has 0 entries"),
        (DetectionPrediction, {"classes": ["a"], "scores": [0.5], "boxes": [(5, 0, 1, 1)]}, "xmin <= xmax"),
        (
            SegmentationPrediction,
            {"classes": ["a"], "scores": [0.5], "polygons": [[(0, 0), (1, 1)]]},
            "at least 3",
        ),
    ],
)
def test_malformed_shapes_are_refused(kind, fields, needle) -> None:
    with pytest.raises(ValidationError, match=needle):
        kind(**fields)


def test_threshold_drops_low_scored_shapes_only() -> None:
    kept = samples.detection((0.9, 0.2, 0.5)).above_threshold(0.5)
    assert kept.scores == [0.9, 0.5]
    assert kept.classes == ["class-0", "class-2"]
    assert kept.boxes == [(0.0, 5.0, 8.0, 30.0), (20.0, 5.0, 28.0, 30.0)]
    segmentation = SegmentationPrediction(
        polygons=[[(0, 0), (1, 0), (1, 1)], [(2, 2), (3, 2), (3, 3)]], classes=["a", "b"], scores=[0.1, 0.8]
    )
    assert segmentation.above_threshold(0.5).classes == ["b"]


def test_classification_has_no_threshold() -> None:
    prediction = ClassificationPrediction(classes=["a"], scores=[0.1])
    assert prediction.above_threshold(0.9) == prediction


def test_events_are_immutable() -> None:
    event: PredictionLogged = samples.prediction_logged()
    with pytest.raises(ValidationError):
        event.source = "other"  # type: ignore[misc]


def test_union_tags_are_left_out_of_field_paths() -> None:
    with pytest.raises(ValidationError) as caught:
        decode("training", b'{"type": "training.requested", "deployment_id": "x"}')
    assert describe(caught.value).startswith("deployment_id: ")


def test_image_reference_must_be_a_content_addressed_image_key() -> None:
    payload = json.loads(samples.prediction_logged().to_bytes())
    payload["image"]["object_key"] = "../../etc/passwd"
    assert "image.object_key: object key '../../etc/passwd' must have the form" in _error_of(
        "predictions", payload
    )
    payload["image"]["object_key"] = f"models/{samples.IMAGE_SHA[:2]}/{samples.IMAGE_SHA}.onnx"
    assert "does not name an image" in _error_of("predictions", payload)
    payload["image"]["object_key"] = f"images/00/{'0' * 64}.png"
    assert _error_of("predictions", payload) == "image: object_key names other bytes than sha256"
