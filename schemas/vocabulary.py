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


class ReplayStatus(StrEnum):
    """A shadow replay's state: serving running a new shadow over the deployment's reviewed images."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # stopped short (the shadow could not be loaded, or the store or Postgres failed)


class PredictionOrder(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    MOST_OUTLYING = "most_outlying"
    LEAST_OUTLYING = "least_outlying"
    MOST_INSTRUCTIVE = "most_instructive"  # the acquisition score, the audit slice mixed in


class QualityEstimator(StrEnum):
    """How the review-quality figures are made unbiased by the queue's order."""

    AUDIT_SLICE = "audit_slice"  # on the random audit slice's reviews only


class ReferenceStatus(StrEnum):
    """Where a deployment's training-data reference stands."""

    COMPUTING = "computing"
    READY = "ready"
    FAILED = "failed"


class DeploymentPolicy(StrEnum):
    """What continuous deployment does with a model version a training exported."""

    DEPLOY_CHAMPION = "deploy_champion"
    DEPLOY_SHADOW = "deploy_shadow"
    # The version serves as shadow; the pipeline's promotion gate promotes it once reviews prove it
    # better, and rolls the promotion back if the previous champion proves better after it.
    SHADOW_THEN_PROMOTE = "shadow_then_promote"
    MANUAL = "manual"


class GateOutcome(StrEnum):
    """What the promotion gate decided (services.common.domain.promotion)."""

    HELD = "held"  # the candidate stays shadow
    PROMOTED = "promoted"  # the candidate became champion, the previous champion is watched as shadow
    WATCHING = "watching"  # after a promotion: not enough reviews yet to keep or undo it
    KEPT = "kept"  # the promotion held through the watch window; the previous champion is removed
    ROLLED_BACK = "rolled_back"  # the previous champion proved better: champion again, no shadow


class GateMetric(StrEnum):
    """What the promotion gate compares: top-1 accuracy, box AP@[.5:.95], mask AP@[.5:.95]."""

    ACCURACY = "accuracy"
    AP = "ap"
    MASK_AP = "mask_ap"


class GateReason(StrEnum):
    NO_MEASURE = "no_measure"
    TOO_FEW_PAIRS = "too_few_pairs"
    NOT_BETTER = "not_better"
    TOO_SLOW = "too_slow"
    BETTER = "better"
    WATCHING = "watching"
    WATCH_PASSED = "watch_passed"
    PREVIOUS_BETTER = "previous_better"


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


class OutputFormat(StrEnum):
    """How a model's output tensors read as a prediction: the layouts of the model families people
    export to ONNX (docs/models.md shows how to export and register each)."""

    SOFTMAX = "softmax"  # classification: one (1, C) tensor of probabilities
    LOGITS = "logits"  # classification: one (1, C) tensor of logits (serving applies the softmax)
    BOXES_SCORES_CLASSES = "boxes_scores_classes"  # detection after NMS: (1, N, 4), (1, N), (1, N)
    YOLO_RAW = "yolo_raw"  # YOLOv8/11 (1, 4+C, N) or YOLOv5 (1, N, 5+C): decode, then class-aware NMS
    NMS_FREE = "nms_free"  # YOLOv10 / end-to-end exports: (1, N, 6) rows of x1, y1, x2, y2, score, class
    TORCHVISION = "torchvision"  # boxes (N, 4), labels (N,), scores (N,); masks (N, 1, H, W) to segment
    YOLO_SEG = "yolo_seg"  # YOLOv8/11-seg: (1, 4+C+M, N) with M mask coefficients, protos (1, M, h, w)


class Resize(StrEnum):
    """How an image becomes the model's input size."""

    STRETCH = "stretch"  # plain resize to width x height (the aspect ratio changes)
    LETTERBOX = "letterbox"  # keep the aspect ratio, pad the rest (YOLO's preprocessing)
    CENTER_CROP = "center_crop"  # keep the aspect ratio, fill the size, crop the overflow (classifiers)


class TriggerRule(StrEnum):
    """Which rule of a deployment's trigger policy requested a training (services.common.domain.triggers)."""

    SUBMITTED = "submitted"
    DRIFT = "drift"
    OUTLIER_RATE = "outlier_rate"
    QUALITY = "quality"
