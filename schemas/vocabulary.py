"""Every enumerated word the platform stores or answers, defined once: the repositories, the api's
bodies and answers, the SDK and the review page use these; the SQL CHECK constraints spell the same
values (tests/integration/test_vocabulary.py compares them). Event-only vocabularies stay in
schemas.events, next to the events that carry them."""

from __future__ import annotations

from enum import StrEnum


class ReviewStatus(StrEnum):
    """A predicted asset's review state (services.common.domain.review_state moves it)."""

    TO_REVIEW = "TO_REVIEW"
    REVIEWED = "REVIEWED"
    SUBMITTED = "SUBMITTED"


class PredictionOrder(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    MOST_OUTLYING = "most_outlying"
    LEAST_OUTLYING = "least_outlying"


class ReferenceStatus(StrEnum):
    """Where a deployment's training-data reference stands."""

    COMPUTING = "computing"
    READY = "ready"
    FAILED = "failed"


class DeploymentPolicy(StrEnum):
    """What continuous deployment does with a model version a training exported."""

    DEPLOY_CHAMPION = "deploy_champion"
    DEPLOY_SHADOW = "deploy_shadow"
    MANUAL = "manual"


class ExperimentStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TargetType(StrEnum):
    """What a job works on (a processing targets a model or dataset version)."""

    EXPERIMENT = "experiment"
    MODEL_VERSION = "model_version"
    DATASET_VERSION = "dataset_version"
    DEPLOYMENT = "deployment"


class Scope(StrEnum):
    """What an API key may do."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class UploadKind(StrEnum):
    """The object-store area an upload lands in."""

    IMAGES = "images"
    MODELS = "models"


class Role(StrEnum):
    """Which of a deployment's two model versions answered."""

    CHAMPION = "champion"
    SHADOW = "shadow"


class ModelBackend(StrEnum):
    """How serving loads an ONNX model version into Triton."""

    PYTHON = "python"
    ONNXRUNTIME = "onnxruntime"
