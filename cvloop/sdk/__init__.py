"""cvloop's Python SDK: `from cvloop.sdk import Client`."""

from schemas.vocabulary import DeploymentPolicy

from .client import Client
from .deployments import (
    BatchItemResult,
    Deployment,
    PredictedAsset,
    ServedPrediction,
    Submission,
    TrainingData,
)
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    CvloopError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from .experiments import Artifact, Experiment
from .jobs import Job, JobTimeout, LogLine
from .monitoring import Comparison, DriftReport, Latency, Outliers, Quality
from .registry import Asset, Dataset, DatasetVersion, Labelmap, Model, ModelVersion, Processing
from .retry import NO_RETRY, RetryPolicy
from .uploads import UploadedFile

__all__ = [
    "NO_RETRY",
    "ApiError",
    "Artifact",
    "Asset",
    "BadRequest",
    "BatchItemResult",
    "Client",
    "Comparison",
    "Conflict",
    "CvloopError",
    "Dataset",
    "DatasetVersion",
    "Deployment",
    "DeploymentPolicy",
    "DriftReport",
    "Experiment",
    "Forbidden",
    "Job",
    "JobTimeout",
    "Labelmap",
    "Latency",
    "LogLine",
    "Model",
    "ModelVersion",
    "NotFound",
    "Outliers",
    "PayloadTooLarge",
    "PredictedAsset",
    "Processing",
    "Quality",
    "RetryPolicy",
    "ServedPrediction",
    "ServerError",
    "ServiceUnavailable",
    "Submission",
    "TrainingData",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "UploadedFile",
]
