"""The contract between cvloop's services and its producers: events, predictions, topics; and between the
job runner and trainers: the job workspace (`job_workspace`)."""

from .codec import TOPIC_EVENTS, decode, describe
from .deadletter import DeadLetter
from .envelope import Event
from .events import (
    AssetSubmitted,
    DeploymentChange,
    DeploymentKind,
    DeploymentUpdated,
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
    TrainingFinished,
    TrainingRequested,
    TrainingStatus,
)
from .predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    DetectionType,
    Prediction,
    SegmentationPrediction,
)
from .topics import TOPICS, CleanupPolicy, Topic, TopicSpec

__all__ = [
    "TOPICS",
    "TOPIC_EVENTS",
    "AssetSubmitted",
    "ClassificationPrediction",
    "CleanupPolicy",
    "DeadLetter",
    "DeploymentChange",
    "DeploymentKind",
    "DeploymentUpdated",
    "DetectionPrediction",
    "DetectionType",
    "DriftReported",
    "Event",
    "FeatureDrift",
    "ImageRef",
    "JobKind",
    "JobRequested",
    "MultipleTestingCorrection",
    "OutlierScored",
    "Prediction",
    "PredictionLogged",
    "PredictionReviewed",
    "PredictionSource",
    "RawPrediction",
    "RoleResult",
    "SegmentationPrediction",
    "Topic",
    "TopicSpec",
    "TrainingFinished",
    "TrainingRequested",
    "TrainingStatus",
    "decode",
    "describe",
]
