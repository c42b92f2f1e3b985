"""One valid instance of every event, for round-trip tests and as test data elsewhere."""

from __future__ import annotations

import hashlib
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import numpy as np
from pydantic import BaseModel

from schemas import (
    ApiKeyChange,
    ApiKeyChanged,
    AssetSubmitted,
    ClassificationPrediction,
    DeadLetter,
    DeploymentChange,
    DeploymentKind,
    DeploymentUpdated,
    DetectionPrediction,
    DetectionType,
    DriftReported,
    FeatureDrift,
    ImageRef,
    JobKind,
    JobRequested,
    MultipleTestingCorrection,
    OutlierScored,
    PredictionLogged,
    PredictionReviewed,
    PredictionSource,
    RawPrediction,
    RoleResult,
    SegmentationPrediction,
    ShadowReplayed,
    TrainingFinished,
    TrainingRequested,
    TrainingStatus,
)
from schemas.features import RgbImage
from schemas.vocabulary import DeploymentPolicy, RunStatus, TargetType
from services.common.domain.deployments import ContinuousTraining, Deployment
from services.common.domain.jobs import Job, JobRun

DEPLOYMENT = UUID("6f1c3a52-6a38-4c1e-9a0e-4d1b8f4e2a10")
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
IMAGE_SHA = hashlib.sha256(b"image").hexdigest()


def detection(scores: tuple[float, ...] = (0.9, 0.2)) -> DetectionPrediction:
    return DetectionPrediction(
        boxes=[(10.0 * i, 5.0, 10.0 * i + 8, 30.0) for i in range(len(scores))],
        classes=[f"class-{i}" for i in range(len(scores))],
        scores=list(scores),
    )


def image() -> ImageRef:
    return ImageRef(
        object_key=f"images/{IMAGE_SHA[:2]}/{IMAGE_SHA}.png",
        sha256=IMAGE_SHA,
        width=64,
        height=48,
        content_type="image/png",
    )


def prediction_logged(deployment_id: UUID = DEPLOYMENT) -> PredictionLogged:
    return PredictionLogged(
        deployment_id=deployment_id,
        prediction_id=uuid4(),
        detection_type=DetectionType.DETECTION,
        image=image(),
        champion=RoleResult(model_version_id=uuid4(), prediction=detection(), latency_ms=12.5),
        shadow=RoleResult(model_version_id=uuid4(), prediction=detection((0.7,)), latency_ms=20.0),
        features={"brightness": 0.4, "contrast": 0.1},
        source=PredictionSource.SERVING,
        tags=["camera-3"],
        predicted_at=NOW,
    )


def all_events() -> list[BaseModel]:
    reference = uuid4()
    return [
        RawPrediction(
            deployment_id=DEPLOYMENT,
            image_base64="iVBORw0KGgo=",
            width=64,
            height=48,
            champion=RoleResult(
                prediction=ClassificationPrediction(classes=["cat", "dog"], scores=[0.8, 0.2]), latency_ms=3
            ),
            tags=["edge"],
            metadata={"site": "north"},
        ),
        prediction_logged(),
        PredictionLogged(
            deployment_id=DEPLOYMENT,
            prediction_id=uuid4(),
            detection_type=DetectionType.SEGMENTATION,
            image=image(),
            champion=RoleResult(
                prediction=SegmentationPrediction(
                    polygons=[[(1, 1), (10, 1), (10, 10)]], classes=["road"], scores=[0.6]
                ),
                latency_ms=40,
            ),
            shadow_error="shadow timed out after 500 ms",
            source=PredictionSource.MONITOR_API,
            predicted_at=NOW,
        ),
        OutlierScored(deployment_id=DEPLOYMENT, prediction_id=uuid4(), reference_id=reference, score=0.97),
        DriftReported(
            deployment_id=DEPLOYMENT,
            reference_id=reference,
            window_start=NOW - timedelta(minutes=5),
            window_end=NOW,
            window_size=1000,
            reference_size=10000,
            correction=MultipleTestingCorrection.BENJAMINI_HOCHBERG,
            alpha=0.05,
            features=[FeatureDrift(feature="brightness", statistic=0.31, p_value=1e-6, drifted=True)],
            drift_detected=True,
        ),
        PredictionReviewed(
            deployment_id=DEPLOYMENT, prediction_id=uuid4(), review=detection((1.0,)), reviewed_by="ana"
        ),
        ShadowReplayed(deployment_id=DEPLOYMENT, shadow_model_version_id=uuid4(), selected=200),
        AssetSubmitted(
            deployment_id=DEPLOYMENT, prediction_id=uuid4(), dataset_version_id=uuid4(), asset_id=uuid4()
        ),
        TrainingRequested(
            deployment_id=DEPLOYMENT, request_id=f"{DEPLOYMENT}:3", cycle=3, submitted_count=100
        ),
        TrainingFinished(
            deployment_id=DEPLOYMENT,
            request_id=f"{DEPLOYMENT}:3",
            experiment_id=uuid4(),
            job_run_id=uuid4(),
            status=TrainingStatus.FAILED,
            reason="exit code 1",
        ),
        DeploymentUpdated(
            deployment_id=DEPLOYMENT,
            change=DeploymentChange.SHADOW_SET,
            kind=DeploymentKind.SERVED,
            detection_type=DetectionType.DETECTION,
            champion_model_version_id=uuid4(),
            shadow_model_version_id=uuid4(),
            confidence_threshold=0.3,
        ),
        JobRequested(
            deployment_id=DEPLOYMENT,
            job_id=uuid4(),
            run_id=uuid4(),
            kind=JobKind.PROCESSING,
            model_version_id=uuid4(),
            parameters={"precision": "fp16"},
        ),
        ApiKeyChanged(project_id=uuid4(), api_key_id=uuid4(), change=ApiKeyChange.REVOKED),
        DeadLetter(
            consumer="ingest",
            source_topic="predictions.raw",
            source_partition=2,
            source_offset=41,
            source_key=b"key",
            original_value=b"\x00not json",
            error_type="validation",
            error="champion: Field required",
        ),
    ]


def deployment_record(
    kind: DeploymentKind = DeploymentKind.MONITORING_ONLY,
    detection_type: DetectionType = DetectionType.DETECTION,
    threshold: float = 0.5,
) -> Deployment:
    """A deployment as the repository answers it, with a champion and a shadow."""
    return Deployment(
        id=uuid4(),
        project_id=uuid4(),
        name="line-4",
        kind=kind,
        detection_type=detection_type,
        champion_model_version_id=uuid4(),
        shadow_model_version_id=uuid4(),
        confidence_threshold=threshold,
        training_dataset_version_id=None,
        reference_status=None,
        reference_reason=None,
        reference_id=None,
        feedback_dataset_version_ids=[],
        continuous_training=ContinuousTraining(),
        cd_policy=DeploymentPolicy.MANUAL,
        cd_active=False,
        created_at=NOW,
        updated_at=NOW,
    )


def job_and_run(
    kind: JobKind,
    target_type: TargetType = TargetType.EXPERIMENT,
    parameters: dict[str, Any] | None = None,
    status: RunStatus = RunStatus.PENDING,
) -> tuple[Job, JobRun]:
    """A job and its first run as the repository answers them (started when the run is running)."""
    job = Job(
        id=uuid4(),
        project_id=uuid4(),
        kind=kind,
        target_type=target_type,
        target_id=uuid4(),
        processing_id=uuid4() if kind is JobKind.PROCESSING else None,
        parameters=parameters or {},
        request_id=None,
        created_at=NOW,
    )
    run = JobRun(
        id=uuid4(),
        project_id=job.project_id,
        job_id=job.id,
        attempt=1,
        status=status,
        reason=None,
        created_at=NOW,
        started_at=NOW if status is RunStatus.RUNNING else None,
        finished_at=None,
    )
    return job, run


def pixel_bomb(width: int = 8000, height: int = 8000) -> bytes:
    """A PNG of a few hundred bytes whose header declares `width` x `height` pixels: decoding it would
    allocate width x height x 3 bytes (and fail on its truncated data); only its header is sound."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)))  # not even one full row
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def hashable_picture(seed: int) -> RgbImage:
    """A 48 x 63 grey picture of 8 x 9 blocks of distinct levels, aligned with the difference hash's
    grid: its hash is stable under small noise and brightness changes, and differs from another seed's."""
    levels = np.random.default_rng(seed).choice(np.arange(20, 236, 3), size=(8, 9), replace=False)
    return np.repeat(np.kron(levels, np.ones((6, 7)))[:, :, None], 3, axis=2).astype(np.uint8)
