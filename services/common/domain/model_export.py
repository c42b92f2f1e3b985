"""What an experiment becomes when it is exported as a model version (pure): shared by the api's export
route and the pipeline's export of a finished training."""

from __future__ import annotations

from pydantic import ValidationError

from schemas.model_io import ModelIO
from schemas.model_version import IO_FILE
from services.common.domain.experiments import Experiment
from services.common.domain.registry import ModelFile, ModelVersion, NewModelVersion


def exported_version(
    experiment: Experiment, base: ModelVersion, *, version: str, description: str, io: ModelIO | None
) -> NewModelVersion:
    """The model version an experiment becomes: its artifacts as files, its parameters (over the base
    version's defaults), dataset versions and itself as source; the base version's labelmap, detection
    type, training entrypoint and image, and serving IO unless given."""
    return NewModelVersion(
        version=version,
        description=description,
        detection_type=base.detection_type,
        labelmap_id=base.labelmap_id,
        training_parameters=base.training_parameters | experiment.parameters,
        training_entrypoint=base.training_entrypoint,
        training_image=base.training_image,
        source_experiment_id=experiment.id,
        io=io or base.io,
        files=[
            ModelFile(name=a.name, object_key=a.object_key, sha256=a.sha256, size_bytes=a.size_bytes)
            for a in experiment.artifacts
        ],
        dataset_versions=experiment.dataset_versions,
    )


def trained_io(data: bytes) -> ModelIO:
    """A trainer's io.json (how serving calls what it trained); ValueError naming the file when it is not
    a valid ModelIO."""
    try:
        return ModelIO.model_validate_json(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'the whole'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{IO_FILE} is not a valid io: {errors}") from None
