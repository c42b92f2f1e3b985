"""The serving io an experiment's export gets (the api's export route and the pipeline's export of a finished
training): the experiment's io.json artifact when its trainer wrote one (it may have changed the input
size), else None, and then the base version's applies."""

from __future__ import annotations

import asyncio

from schemas.model_io import ModelIO
from schemas.model_version import IO_FILE
from services.common.domain.experiments import Experiment
from services.common.domain.model_export import trained_io
from services.common.storage import ObjectStore


async def artifact_bytes(store: ObjectStore, experiment: Experiment, name: str) -> bytes | None:
    """The experiment's artifact `name`, None when it has none; ValueError naming it when it is missing
    from the object store."""
    artifact = next((a for a in experiment.artifacts if a.name == name), None)
    if artifact is None:
        return None
    if not await asyncio.to_thread(store.exists, artifact.object_key):
        raise ValueError(f"artifact {name} of experiment {experiment.id} is not in the object store")
    return await asyncio.to_thread(store.get_bytes, artifact.object_key)


async def artifact_io(store: ObjectStore, experiment: Experiment) -> ModelIO | None:
    """The experiment's io.json as a ModelIO, None without that artifact; ValueError naming io.json when
    it is missing from the object store or not a valid io."""
    data = await artifact_bytes(store, experiment, IO_FILE)
    return None if data is None else trained_io(data)
