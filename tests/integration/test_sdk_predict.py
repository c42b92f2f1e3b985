"""`deployment.predict(path)` through the real serving service (`python -m services.serving`) and
tritonserver: a digits classifier registered and deployed with the SDK through the real control
plane, served once serving has followed the deployment's event."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from cvloop.sdk import ApiError, Client, Deployment, NotFound, ServedPrediction, UnsupportedMediaType
from cvloop.stack.service import Api, Serving
from cvloop.stack.settings import sdk_settings
from schemas.events import PredictionLogged
from schemas.topics import Topic
from services.common.settings import Settings
from tests.api_support import published
from tests.sdk_support import eventually, needs, new_project, running

pytestmark = needs("services/api/__main__.py", "services/serving/__main__.py", "cvloop/demo/digits.py")


@pytest.fixture(scope="module")
def platform(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings, triton_settings: Settings
) -> Iterator[Settings]:
    with running(Api(postgres_settings), Serving(postgres_settings)):
        yield postgres_settings


def _served(deployment: Deployment, image: Path) -> ServedPrediction | None:
    """The answer once serving routes the deployment; None while it is still loading it."""
    try:
        return deployment.predict(image)
    except ApiError as exc:
        if exc.status in (404, 503):
            return None
        raise


def test_predict_answers_the_champions_prediction(platform: Settings, tmp_path: Path) -> None:
    from cvloop.demo.digits import digit_label, digit_png, train_linear_classifier  # serving's demo models

    with Client(
        new_project(platform, f"served-{uuid4().hex[:8]}"), settings=sdk_settings(platform)
    ) as client:
        trained = train_linear_classifier()
        labelmap = client.create_labelmap("digits", trained.labels)
        version = client.create_model("digits").create_version(
            "v1", "classification", labelmap=labelmap, files={"model.onnx": trained.onnx}, io=trained.io
        )
        deployment = client.create_deployment("digits", version, kind="served")

        images = []
        for index in range(10):
            path = tmp_path / f"digit-{index}.png"
            path.write_bytes(digit_png(index))
            images.append(path)
        first = eventually(lambda: _served(deployment, images[0]))
        answers = [first] + [deployment.predict(path) for path in images[1:]]

        assert {a.model_version_id for a in answers} == {version.id}
        assert len({a.prediction_id for a in answers}) == len(images)
        right = 0
        for index, answer in enumerate(answers):
            prediction = answer.prediction
            assert sorted(prediction.classes) == sorted(trained.labels)
            top = max(range(len(prediction.classes)), key=lambda i: prediction.scores[i])
            right += prediction.classes[top] == digit_label(index)
        assert right >= 8  # the classifier is ~95 % accurate on held-out digits

        # A new image: a repeated one answers the id of its first prediction, logged untagged.
        fresh = tmp_path / "fresh.png"
        fresh.write_bytes(digit_png(len(images)))
        tagged = deployment.predict(fresh, tags=["line-3", "night"])
        [logged] = asyncio.run(
            published(
                platform,
                [Topic.PREDICTIONS],
                lambda e: isinstance(e, PredictionLogged) and e.prediction_id == tagged.prediction_id,
                1,
            )
        )
        assert logged.tags == ["line-3", "night"]

        not_an_image = tmp_path / "notes.txt"
        not_an_image.write_text("no pixels here")
        with pytest.raises(UnsupportedMediaType):
            deployment.predict(not_an_image)
        with pytest.raises(NotFound):
            Deployment(client, {"id": str(uuid4())}).predict(images[0])
