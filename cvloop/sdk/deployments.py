"""Deployments: champion and shadow, threshold, pipeline settings, monitoring and serving, and the
review of what they predicted."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from PIL import Image
from pydantic import BaseModel, ConfigDict, TypeAdapter

from schemas.api.deployments import ReviewQualityOut, ReviewQueueSettings
from schemas.predictions import DetectionType, Prediction
from schemas.triggers import TriggerPolicy
from schemas.vocabulary import DeploymentPolicy, PredictionOrder, ReferenceStatus, ReviewStatus

from .jobs import Job
from .monitoring import Comparison, DriftReport, GateDecision, Latency, Outliers, Quality, span_params
from .pagination import paginate
from .registry import DatasetVersion
from .resource import Record, Ref, Resource, as_json, ids_by_alias, ref_id
from .uploads import FileSource

PredictionLike = BaseModel | Mapping[str, Any]
_PREDICTION = TypeAdapter(Prediction)


class TrainingData(BaseModel):
    """The dataset version a deployment's champion learnt from, and its reference's status."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dataset_version_id: UUID | None
    status: ReferenceStatus | None
    reason: str | None = None
    job_id: UUID | None = None


class Submission(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    prediction_id: UUID
    asset_id: UUID


class BatchItemResult(BaseModel):
    """One item of a batch monitor call: the status it alone would have had (201, 409, 4xx)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int
    status: int
    prediction_id: UUID | None = None
    detail: str | None = None


class ServedPrediction(BaseModel):
    """What serving answers for one image: the champion's prediction."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    prediction_id: UUID
    model_version_id: UUID | None
    prediction: Prediction
    latency_ms: float


class PredictedAsset(Record):
    """An image a deployment predicted: its champion and shadow predictions, outlier score, review."""

    @property
    def id(self) -> UUID:
        return UUID(str(self.data["prediction_id"]))

    @property
    def status(self) -> str:
        """TO_REVIEW, REVIEWED or SUBMITTED."""
        return self.data["status"]

    @property
    def champion_prediction(self) -> Prediction:
        return _PREDICTION.validate_python(self.data["champion_prediction"])

    @property
    def shadow_prediction(self) -> Prediction | None:
        shadow = self.data.get("shadow_prediction")
        return _PREDICTION.validate_python(shadow) if shadow is not None else None

    @property
    def review(self) -> Prediction | None:
        review = self.data.get("review")
        return _PREDICTION.validate_python(review) if review is not None else None

    def refresh(self) -> PredictedAsset:
        self.data = self.client.api.get(f"/v1/predictions/{self.id}")
        return self

    def add_review(self, review: PredictionLike) -> PredictedAsset:
        """The corrected prediction (of the deployment's type): TO_REVIEW becomes REVIEWED."""
        self.data = self.client.api.put(f"/v1/predictions/{self.id}/review", {"review": as_json(review)})
        return self

    def __repr__(self) -> str:
        return f"PredictedAsset({self.id}, {self.data.get('status')})"


def _role(prediction: PredictionLike, latency_ms: float | None, model_version: Ref | None) -> dict[str, Any]:
    role: dict[str, Any] = {"prediction": as_json(prediction)}
    if latency_ms is not None:  # left out rather than null, so the server names the missing field
        role["latency_ms"] = latency_ms
    if model_version is not None:
        role["model_version_id"] = ref_id(model_version)
    return role


def _image_bytes(image: FileSource) -> bytes:
    if isinstance(image, bytes):
        return image
    if isinstance(image, str | Path):
        return Path(image).read_bytes()
    return image.read()


def _image_size(content: bytes) -> tuple[int, int]:
    """(width, height) from the image's header, for a caller who did not give them."""
    with Image.open(io.BytesIO(content)) as img:
        return img.size


class Deployment(Resource):
    path = "/v1/deployments/{id}"

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def kind(self) -> str:
        """served or monitoring_only."""
        return self.data["kind"]

    @property
    def detection_type(self) -> DetectionType:
        return DetectionType(self.data["detection_type"])

    @property
    def champion_model_version_id(self) -> UUID | None:
        value = self.data.get("champion_model_version_id")
        return UUID(str(value)) if value else None

    @property
    def shadow_model_version_id(self) -> UUID | None:
        value = self.data.get("shadow_model_version_id")
        return UUID(str(value)) if value else None

    def _update(self, method: str, suffix: str, body: Mapping[str, Any] | None = None) -> Deployment:
        self.data = self.client.api.json(method, f"{self.url}{suffix}", json=body)
        return self

    # Champion, shadow, threshold --------------------------------------------------------------

    def set_champion_model(self, model_version: Ref) -> Deployment:
        return self._update("PUT", "/champion", {"model_version_id": ref_id(model_version)})

    def set_shadow_model(self, model_version: Ref) -> Deployment:
        """Run (or log) `model_version` beside the champion on the same images."""
        return self._update("PUT", "/shadow", {"model_version_id": ref_id(model_version)})

    def remove_shadow_model(self) -> Deployment:
        return self._update("DELETE", "/shadow")

    def promote_shadow(self) -> Deployment:
        """The shadow becomes the champion, and the deployment has no shadow."""
        return self._update("POST", "/shadow/promote")

    def update_confidence_threshold(self, threshold: float) -> Deployment:
        return self._update("PUT", "/threshold", {"confidence_threshold": threshold})

    # Pipeline settings ------------------------------------------------------------------------

    def set_training_data(self, dataset_version: Ref) -> TrainingData:
        """The dataset version the champion learnt from; its outlier reference is computed by a job."""
        body = {"dataset_version_id": ref_id(dataset_version)}
        answer = self.client.api.put(f"{self.url}/training-data", body)
        return TrainingData.model_validate(answer)

    def get_training_data(self) -> TrainingData:
        return TrainingData.model_validate(self.client.api.get(f"{self.url}/training-data"))

    def training_data_job(self) -> Job | None:
        """The reference job of the training data, to wait for it or read its logs."""
        job_id = self.get_training_data().job_id
        return self.client.get_job(job_id) if job_id else None

    def attach_dataset_version_to_feedback_loop(self, dataset_version: Ref) -> None:
        """Reviewed predictions can then be submitted to it (409 when its labelmap or detection type
        differs from the champion's)."""
        self.client.api.put(f"{self.url}/feedback-loop/{ref_id(dataset_version)}")

    def detach_dataset_version_from_feedback_loop(self, dataset_version: Ref) -> None:
        self.client.api.delete(f"{self.url}/feedback-loop/{ref_id(dataset_version)}")

    def list_feedback_loop_dataset_versions(self) -> list[DatasetVersion]:
        pages = paginate(self.client.api_page(f"{self.url}/feedback-loop"))
        return [DatasetVersion(self.client, item) for item in pages]

    def setup_continuous_training(
        self,
        project: Ref | None = None,
        dataset_versions: Mapping[str, Ref] | None = None,
        training_parameters: Mapping[str, Any] | None = None,
        threshold: int | None = None,
        active: bool = True,
        policy: TriggerPolicy | Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train a new experiment once `threshold` assets were submitted to the feedback loop, or when a
        rule of `policy` holds (drift, outlier rate, reviewed quality; with a cooldown and a minimum
        submitted), on `dataset_versions` (alias -> dataset version) with `training_parameters` (default:
        the champion's)."""
        body = {
            "project_id": ref_id(project) if project is not None else None,
            "dataset_versions": ids_by_alias(dataset_versions),
            "training_parameters": dict(training_parameters) if training_parameters is not None else None,
            "threshold": threshold,
            "active": active,
            "policy": TriggerPolicy.model_validate(policy or {}).model_dump(mode="json", exclude_none=True),
        }
        return self.client.api.put(f"{self.url}/continuous-training", body)

    def toggle_continuous_training(self, active: bool) -> dict[str, Any]:
        return self.client.api.patch(f"{self.url}/continuous-training", {"active": active})

    def setup_continuous_deployment(
        self, policy: DeploymentPolicy | str, active: bool = True
    ) -> dict[str, Any]:
        """What becomes of a continuous training's model: deploy_champion, deploy_shadow,
        shadow_then_promote (shadow, promoted by the pipeline's gate once reviews prove it better) or
        manual."""
        body = {"policy": DeploymentPolicy(policy).value, "active": active}
        return self.client.api.put(f"{self.url}/continuous-deployment", body)

    def toggle_continuous_deployment(self, active: bool) -> dict[str, Any]:
        return self.client.api.patch(f"{self.url}/continuous-deployment", {"active": active})

    # Predictions in ---------------------------------------------------------------------------

    def monitor(
        self,
        image: FileSource | None,
        latency: float,
        prediction: PredictionLike,
        *,
        height: int | None = None,
        width: int | None = None,
        image_object_key: str | None = None,
        shadow_prediction: PredictionLike | None = None,
        shadow_latency: float | None = None,
        model_version: Ref | None = None,
        shadow_model_version: Ref | None = None,
        source: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> UUID:
        """Log what a model outside cvloop predicted for an image (a monitoring-only deployment):
        the champion's prediction and latency (ms), and the shadow's when one ran. The image is a
        file, its bytes, or `image_object_key` of one already uploaded (then give width and height).
        Answers the prediction id; logging an image twice raises Conflict with the first one's id."""
        body = self._monitor_body(
            image,
            latency,
            prediction,
            height=height,
            width=width,
            image_object_key=image_object_key,
            shadow_prediction=shadow_prediction,
            shadow_latency=shadow_latency,
            model_version=model_version,
            shadow_model_version=shadow_model_version,
            source=source,
            tags=tags,
            metadata=metadata,
            timestamp=timestamp,
        )
        response = self.client.ingest.request(
            "POST",
            f"/v1/deployments/{self.id}/predictions",
            json=body,
            idempotent_post=True,  # the image is the key: a replay answers 409 with our own id
            conflict_after_retry_ok=True,
        )
        return UUID(response.json()["prediction_id"])

    def monitor_batch(self, items: Iterable[Mapping[str, Any]]) -> list[BatchItemResult]:
        """Many predictions in one call, each a dict of monitor()'s arguments; each is answered on its
        own (status 201, 409 or 4xx with its detail), in order."""
        bodies = [self._monitor_body(**item) for item in items]
        answer = self.client.ingest.post(
            f"/v1/deployments/{self.id}/predictions:batch", {"items": bodies}, idempotent_post=True
        )
        return [BatchItemResult.model_validate(r) for r in answer["results"]]

    @staticmethod
    def _monitor_body(
        image: FileSource | None,
        latency: float,
        prediction: PredictionLike,
        *,
        height: int | None = None,
        width: int | None = None,
        image_object_key: str | None = None,
        shadow_prediction: PredictionLike | None = None,
        shadow_latency: float | None = None,
        model_version: Ref | None = None,
        shadow_model_version: Ref | None = None,
        source: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> dict[str, Any]:
        if (image is None) == (image_object_key is None):
            raise ValueError("give either the image or image_object_key")
        body: dict[str, Any] = {"champion": _role(prediction, latency, model_version)}
        if image is not None:
            content = _image_bytes(image)
            body["image_base64"] = base64.b64encode(content).decode()
            if width is None or height is None:
                width, height = _image_size(content)
        else:
            body["image_object_key"] = image_object_key
            if width is None or height is None:
                raise ValueError("width and height are needed with image_object_key")
        body |= {"width": width, "height": height}
        if shadow_prediction is not None:
            body["shadow"] = _role(shadow_prediction, shadow_latency, shadow_model_version)
        if source is not None:
            body["source"] = source
        if tags:
            body["tags"] = list(tags)
        if metadata:
            body["metadata"] = dict(metadata)
        if timestamp is not None:
            body["predicted_at"] = timestamp.isoformat()
        return body

    def predict(self, image: FileSource, tags: Sequence[str] = ()) -> ServedPrediction:
        """The champion's prediction for an image, through serving (a served deployment); `tags` are
        kept on the predicted asset. Not retried once sent: a second try would log a second prediction."""
        response = self.client.serving.request(
            "POST",
            f"/v1/deployments/{self.id}/predict",
            params={"tags": list(tags)},
            content=_image_bytes(image),
            headers={"Content-Type": "application/octet-stream"},
        )
        return ServedPrediction.model_validate(response.json())

    def delete(self) -> None:
        """Delete the deployment with its predictions and reports (409 while a job on it is active)."""
        self.client.api.delete(self.url)

    # Monitoring over a time range (default: the last day, in hourly buckets) ------------------

    def drift(
        self, start: datetime | None = None, end: datetime | None = None, *, flagged: bool = False
    ) -> list[DriftReport]:
        """Drift reports whose window ended in the range, oldest first; `flagged`: only those that
        detected drift."""
        params = span_params(start, end, None) | {"flagged": flagged}
        pages = paginate(self.client.api_page(f"{self.url}/monitoring/drift", params))
        return [DriftReport.model_validate(item) for item in pages]

    def outliers(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        bucket_s: int | None = None,
        level: float = 0.99,
        bins: int = 20,
    ) -> Outliers:
        """The outlier-score histogram of the range, and per bucket the share of scores above `level`."""
        params = span_params(start, end, bucket_s) | {"level": level, "bins": bins}
        return Outliers.model_validate(self.client.api.get(f"{self.url}/monitoring/outliers", params))

    def latency(
        self, start: datetime | None = None, end: datetime | None = None, *, bucket_s: int | None = None
    ) -> Latency:
        """Predictions and latency p50/p95/p99 per bucket and role."""
        params = span_params(start, end, bucket_s)
        return Latency.model_validate(self.client.api.get(f"{self.url}/monitoring/latency", params))

    def quality(
        self, start: datetime | None = None, end: datetime | None = None, *, bucket_s: int | None = None
    ) -> Quality:
        """Champion and shadow against the reviews, per bucket of prediction time."""
        params = span_params(start, end, bucket_s)
        return Quality.model_validate(self.client.api.get(f"{self.url}/monitoring/quality", params))

    def comparison(self, window: int = 500) -> Comparison:
        """Champion against shadow over the champion's latest `window` predictions: latency, quality
        against the reviews, agreement."""
        return Comparison.model_validate(self.client.api.get(f"{self.url}/comparison", {"window": window}))

    def review_queue(self) -> ReviewQueueSettings:
        """The review queue's acquisition weights and audit slice (docs/api.md, The review queue)."""
        return ReviewQueueSettings.model_validate(self.client.api.get(f"{self.url}/review-queue"))

    def set_review_queue(self, **changes: float) -> ReviewQueueSettings:
        """Change some of the review queue's settings (the others keep their value); the TO_REVIEW
        predictions are re-ranked at once."""
        body = self.review_queue().model_dump() | changes
        return ReviewQueueSettings.model_validate(self.client.api.put(f"{self.url}/review-queue", body))

    def review_quality(self, window: int = 1000) -> ReviewQualityOut:
        """Champion and shadow quality on the audit slice of the latest `window` reviews, which the
        queue's order does not bias."""
        return ReviewQualityOut.model_validate(
            self.client.api.get(f"{self.url}/review-quality", {"window": window})
        )

    def gate_decisions(self, limit: int = 50) -> list[GateDecision]:
        """The promotion gate's latest decisions (policy shadow_then_promote), newest first."""
        found = self.client.api.get(f"{self.url}/gate-decisions", {"limit": limit})
        return [GateDecision.model_validate(d) for d in found]

    # Predictions out: review and submission ---------------------------------------------------

    def list_predicted_assets(
        self,
        status: ReviewStatus | str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        predicted_since: datetime | None = None,
        predicted_until: datetime | None = None,
        min_outlier_score: float | None = None,
        max_outlier_score: float | None = None,
        tags: Sequence[str] | None = None,
        order: PredictionOrder | str = PredictionOrder.NEWEST,
        limit: int | None = None,
        offset: int = 0,
        page_size: int = 100,
    ) -> list[PredictedAsset]:
        """Predicted assets matching every filter given (tags: all of them), `limit` at most (None:
        all), in `order`: newest, oldest, most_outlying, least_outlying or most_instructive (the review
        queue: near-duplicates once, their number in `duplicates`). `since`/`until` is when
        they were logged, `predicted_since`/`predicted_until` the prediction's own time (a drift
        report's window)."""
        params = {
            "status": status,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "predicted_since": predicted_since.isoformat() if predicted_since else None,
            "predicted_until": predicted_until.isoformat() if predicted_until else None,
            "min_outlier_score": min_outlier_score,
            "max_outlier_score": max_outlier_score,
            "tags": list(tags) if tags else None,
            "order": order,
        }
        fetch = self.client.api_page(f"{self.url}/predictions", params)
        return [
            PredictedAsset(self.client, item)
            for item in paginate(fetch, limit=limit, offset=offset, page_size=page_size)
        ]

    def get_predicted_asset(self, prediction_id: UUID | str) -> PredictedAsset:
        return PredictedAsset(self.client, self.client.api.get(f"/v1/predictions/{ref_id(prediction_id)}"))

    def add_review(
        self, predicted_asset: PredictedAsset | UUID | str, review: PredictionLike
    ) -> PredictedAsset:
        """Review one of this deployment's predicted assets, given as itself or its prediction id."""
        asset = (
            predicted_asset
            if isinstance(predicted_asset, PredictedAsset)
            else PredictedAsset(self.client, {"prediction_id": str(predicted_asset)})
        )
        return asset.add_review(review)

    def submit_to_feedback_loop(
        self,
        dataset_version: Ref,
        predicted_assets: Iterable[PredictedAsset | UUID | str] | None = None,
    ) -> list[Submission]:
        """Add reviewed predicted assets (default: every reviewed one) to a dataset version attached to
        the feedback loop; all of them or none."""
        body: dict[str, Any] = {"dataset_version_id": ref_id(dataset_version)}
        if predicted_assets is None:
            body["all_reviewed"] = True
        else:
            body["prediction_ids"] = [ref_id(asset) for asset in predicted_assets]
        # Naming the predictions makes a repeat answer the same and change nothing: safe to retry.
        answer = self.client.api.post(
            f"{self.url}/predictions/submit", body, idempotent_post=predicted_assets is not None
        )
        return [Submission.model_validate(s) for s in answer["submitted"]]
