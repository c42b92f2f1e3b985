"""The data the review page is tested and photographed on, made through the SDK as a user makes it:
scikit-learn's bundled digits, two ONNX classifiers trained on them (champion and shadow) run here with
onnxruntime as a producer outside cvloop would, their predictions logged to a monitoring-only
deployment through ingest; the same two served through serving and Triton; a detection deployment
whose boxes are measured on the digits' ink. Both classifier deployments have continuous training
(the reference trainer, run by the job runner) and continuous deployment deploy_shadow: a submission from
the page that reaches the threshold trains and deploys a new version."""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

import numpy as np
import onnxruntime
from PIL import Image

from cvloop.demo.digits import (
    DETECTOR_IO,
    DETECTOR_LABELS,
    DIGITS_IO,
    LABELS,
    SHIFTS,
    SIDE,
    TrainedModel,
    box_detector_model,
    digit_images,
    digit_label,
    png,
    train_linear_classifier,
    train_mlp_classifier,
)
from cvloop.sdk import (
    ApiError,
    Client,
    Deployment,
    DeploymentPolicy,
    Labelmap,
    ModelVersion,
    NotFound,
    PredictedAsset,
)
from schemas.features import RgbImage
from schemas.predictions import ClassificationPrediction, DetectionPrediction
from tests.sdk_support import eventually

TRAINING_IMAGES = 80  # the training data's reference is computed on these
LOGGED = range(1200, 1218)  # held-out digits logged as predictions
SHIFTED = {"rotated": 1300, "darkened": 1301, "noisy": 1302}  # odd images: high outlier scores
REVIEWED_BEFORE = 5  # predictions reviewed through the SDK before the browser comes
# Those and the one reviewed in the browser, submitted together, start exactly one training (a submission
# counts one toward the threshold: twice the threshold would start two).
THRESHOLD = REVIEWED_BEFORE + 1
WARM_UP = range(1600, 1720)  # digits predicted through serving until both models answer
SERVED = range(1500, 1510)  # then these; the odd ones reviewed
SERVED_THRESHOLD = len(SERVED) // 2  # its reviewed predictions, submitted together, start a training
SERVED_TEST = range(1100, 1160)  # its trainings' `test` alias: accuracy before and after
PROBES = range(1000, 1100)  # predicted until a new shadow answers
COMPARED = range(1730, 1740)  # then these, the odd ones reviewed: the new shadow's figures
CANVAS = (64, 48)  # the detection deployment's images (width, height)
DIGIT_AT = (4, 8)  # where the 32x32 digit sits on them


@dataclass(frozen=True)
class World:
    classifier: Deployment  # monitoring-only, its whole pipeline set up
    detector: Deployment  # monitoring-only, boxes
    served: Deployment  # served through Triton, champion and shadow
    feedback_version_id: str
    served_feedback_version_id: str
    champion_id: str
    shadow_id: str


class Classifier:
    """An ONNX digits classifier as a producer runs it: grey, 8x8, pixels / 255."""

    def __init__(self, model: TrainedModel) -> None:
        self.session = onnxruntime.InferenceSession(model.onnx, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, pixels: RgbImage) -> tuple[ClassificationPrediction, float]:
        small = Image.fromarray(pixels).convert("L").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        x = (np.asarray(small, np.float32) / 255.0)[None, None]
        started = time.perf_counter()
        [scores] = self.session.run(None, {self.input: x})
        latency_ms = (time.perf_counter() - started) * 1000.0
        probabilities = [round(float(s), 4) for s in scores[0]]
        return ClassificationPrediction(classes=LABELS, scores=probabilities), latency_ms


def ink_box(pixels: RgbImage, level: int) -> tuple[float, float, float, float]:
    """The box around the pixels brighter than `level`: where the digit's strokes are."""
    ys, xs = np.nonzero(pixels.max(axis=2) > level)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def on_canvas(pixels: RgbImage) -> RgbImage:
    """The digit on a wider black frame, as a camera sees a part of its scene: room around the digit."""
    canvas = np.zeros((CANVAS[1], CANVAS[0], 3), np.uint8)
    canvas[DIGIT_AT[1] : DIGIT_AT[1] + pixels.shape[0], DIGIT_AT[0] : DIGIT_AT[0] + pixels.shape[1]] = pixels
    return canvas


def _classification_deployment(
    client: Client, images: list[RgbImage]
) -> tuple[Deployment, str, Labelmap, ModelVersion, ModelVersion]:
    labelmap = client.create_labelmap("digits", LABELS)
    model = client.create_model("digits-classifier", "handwritten digits, 0 to 9")
    linear, mlp = train_linear_classifier(), train_mlp_classifier()
    champion = model.create_version(
        "1",
        "classification",
        labelmap=labelmap,
        files={"model.onnx": linear.onnx},
        io=DIGITS_IO,
        training_parameters={"epochs": 20, "learning_rate": 0.05},
    )
    shadow = model.create_version(
        "2", "classification", labelmap=labelmap, files={"model.onnx": mlp.onnx}, io=DIGITS_IO
    )
    deployment = client.create_deployment("digits-camera", champion, kind="monitoring_only")
    deployment.set_shadow_model(shadow)

    dataset = client.create_dataset("digits", "scikit-learn's bundled handwritten digits")
    train = dataset.create_version("train", "classification", labelmap=labelmap)
    for index in range(TRAINING_IMAGES):
        truth = {"type": "classification", "classes": [digit_label(index)], "scores": [1.0]}
        train.add_asset(png(images[index]), truth)
    feedback = dataset.create_version("feedback-1", "classification", labelmap=labelmap)
    deployment.set_training_data(train)
    eventually(lambda: deployment.get_training_data().status == "ready", timeout_s=180)
    deployment.attach_dataset_version_to_feedback_loop(feedback)
    deployment.setup_continuous_training(dataset_versions={"train": feedback}, threshold=THRESHOLD)
    deployment.setup_continuous_deployment(DeploymentPolicy.DEPLOY_SHADOW)

    run_champion, run_shadow = Classifier(linear), Classifier(mlp)
    rng = np.random.default_rng(7)
    logged = [(images[i], ["camera-1" if i % 2 else "camera-2"]) for i in LOGGED]
    logged += [(SHIFTS[name](images[i], rng), ["camera-2", name]) for name, i in SHIFTED.items()]
    prediction_ids = []
    for pixels, tags in logged:
        answer, latency = run_champion(pixels)
        shadow_answer, shadow_latency = run_shadow(pixels)
        prediction_id = deployment.monitor(
            png(pixels),
            latency=latency,
            prediction=answer,
            shadow_prediction=shadow_answer,
            shadow_latency=shadow_latency,
            source="camera",
            tags=tags,
        )
        prediction_ids.append(prediction_id)
    eventually(
        lambda: (
            len(scored := deployment.list_predicted_assets()) == len(logged)
            and all(a.data["outlier_score"] is not None for a in scored)
        ),
        timeout_s=120,
    )
    # A reviewer has already been through the first few: their true digits.
    for prediction_id, index in list(zip(prediction_ids, LOGGED, strict=False))[:REVIEWED_BEFORE]:
        deployment.add_review(
            prediction_id, {"type": "classification", "classes": [digit_label(index)], "scores": [1.0]}
        )
    return deployment, str(feedback.id), labelmap, champion, shadow


def _detection_deployment(client: Client, images: list[RgbImage]) -> Deployment:
    labelmap = client.create_labelmap("digit-parts", DETECTOR_LABELS)
    model = client.create_model("digit-boxes", "where the digit is")
    detector = box_detector_model()
    versions = [
        model.create_version(
            version, "detection", labelmap=labelmap, files={"model.onnx": detector.onnx}, io=DETECTOR_IO
        )
        for version in ("1", "2")
    ]
    deployment = client.create_deployment("digit-boxes", versions[0], kind="monitoring_only")
    deployment.set_shadow_model(versions[1])
    # Training data of a single image: too little for a reference, so its job fails and says why.
    boxes = client.create_dataset("digit-boxes").create_version("v1", "detection", labelmap=labelmap)
    pixels = on_canvas(images[1399])
    boxes.add_asset(
        png(pixels),
        {"type": "detection", "boxes": [ink_box(pixels, 64)], "classes": ["digit"], "scores": [1.0]},
    )
    deployment.set_training_data(boxes)
    eventually(lambda: deployment.get_training_data().status == "failed", timeout_s=180)
    for index in (1400, 1401, 1402):
        pixels = on_canvas(images[index])
        champion = DetectionPrediction(boxes=[ink_box(pixels, 64)], classes=["digit"], scores=[0.9])
        shadow = DetectionPrediction(boxes=[ink_box(pixels, 160)], classes=["digit"], scores=[0.7])
        deployment.monitor(
            png(pixels), latency=2.0, prediction=champion, shadow_prediction=shadow, shadow_latency=3.0
        )
    eventually(lambda: len(deployment.list_predicted_assets()) == 3, timeout_s=60)
    return deployment


def _shadow_answered(deployment: Deployment, image: bytes) -> bool:
    """One prediction through serving, and whether the shadow answered it too (False while serving is
    still loading either model)."""
    try:
        answer = deployment.predict(image)
    except ApiError as exc:
        if exc.status in (404, 503):
            return False
        raise
    return bool(_recorded(deployment, answer.prediction_id).data["shadow_prediction"])


def _recorded(deployment: Deployment, prediction_id: UUID) -> PredictedAsset:
    """The predicted asset once ingest's persistence has written serving's event down."""

    def read() -> PredictedAsset | None:
        try:
            return deployment.get_predicted_asset(prediction_id)
        except NotFound:
            return None

    return eventually(read, timeout_s=60)


def _served_deployment(
    client: Client, images: list[RgbImage], labelmap: Labelmap, champion: ModelVersion, shadow: ModelVersion
) -> tuple[Deployment, str]:
    """The same two classifiers served by cvloop through Triton; serving logs both answers. A warm-up
    digit is predicted until both models answer, then the digits the comparison is made on. Its own
    feedback dataset version trains the next version (fine-tuned gently), measured on held-out digits
    and deployed as shadow."""
    deployment = client.create_deployment("digits-served", champion, kind="served")
    deployment.set_shadow_model(shadow)
    dataset = client.create_dataset("digits-served", "reviewed served digits")
    feedback = dataset.create_version("feedback-1", "classification", labelmap=labelmap)
    test = dataset.create_version("test", "classification", labelmap=labelmap)
    for index in SERVED_TEST:
        test.add_asset(png(images[index]), _truth(index))
    deployment.attach_dataset_version_to_feedback_loop(feedback)
    deployment.setup_continuous_training(
        dataset_versions={"train": feedback, "test": test},
        training_parameters={"epochs": 10, "learning_rate": 0.001},
        threshold=SERVED_THRESHOLD,
    )
    deployment.setup_continuous_deployment(DeploymentPolicy.DEPLOY_SHADOW)
    # A new digit each time: serving's events of an image already recorded are not recorded again.
    warm_up = iter(images[WARM_UP.start : WARM_UP.stop])
    eventually(lambda: _shadow_answered(deployment, png(next(warm_up))), interval_s=1.0, timeout_s=100)
    for index in SERVED:
        asset = _recorded(deployment, deployment.predict(png(images[index])).prediction_id)
        if index % 2:  # reviewed: the quality compared on the pipeline page
            asset.add_review(_truth(index))
    return deployment, str(feedback.id)


def _truth(index: int) -> dict:
    return {"type": "classification", "classes": [digit_label(index)], "scores": [1.0]}


def predict_and_review(deployment: Deployment, indices: range) -> None:
    """Each digit predicted through serving; the odd ones reviewed with their true digit."""
    images = digit_images()
    for index in indices:
        asset = _recorded(deployment, deployment.predict(png(images[index])).prediction_id)
        if index % 2:
            asset.add_review(_truth(index))


def shadow_answers(deployment: Deployment, version_id: str, image: bytes) -> bool:
    """One prediction through serving, and whether `version_id` answered it as shadow."""
    answer = deployment.predict(image)
    return str(_recorded(deployment, answer.prediction_id).data["shadow_model_version_id"]) == version_id


def training_job(client: Client, feedback_version_id: str) -> dict | None:
    """The training job the pipeline requested for the deployment whose continuous training learns from
    `feedback_version_id` (each deployment here its own), or None before it did."""
    for job in client.api.get("/v1/jobs", params={"kind": "training"})["items"]:
        experiment = client.api.get(f"/v1/experiments/{job['target_id']}")
        if feedback_version_id in {str(v) for v in experiment["dataset_versions"].values()}:
            return job
    return None


def build(client: Client) -> World:
    images = digit_images()
    classifier, feedback_id, labelmap, champion, shadow = _classification_deployment(client, images)
    detector = _detection_deployment(client, images)
    served, served_feedback_id = _served_deployment(client, images, labelmap, champion, shadow)
    return World(
        classifier,
        detector,
        served,
        feedback_id,
        served_feedback_id,
        str(champion.id),
        str(shadow.id),
    )
