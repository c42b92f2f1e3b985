"""Experiments: their artifacts, and exporting one as a model version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.api.experiments import ArtifactOut as Artifact
from schemas.model_io import ModelIO
from schemas.vocabulary import UploadKind

from .registry import ModelVersion
from .resource import Ref, Resource, as_json, ref_id
from .uploads import FileSource, Progress, UploadedFile


class Experiment(Resource):
    path = "/v1/experiments/{id}"

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def artifacts(self) -> list[Artifact]:
        """The artifacts as the API answers them: id, name, object_key, sha256, size_bytes."""
        return [Artifact.model_validate(a) for a in self.data.get("artifacts", [])]

    def store(
        self, name: str, source: FileSource | UploadedFile, progress: Progress | None = None
    ) -> Artifact:
        """Upload a file (unless already uploaded) and keep it as the artifact `name`."""
        uploaded = self.client.ensure_uploaded(source, UploadKind.MODELS, progress)
        artifact = self.client.api.post(
            f"{self.url}/artifacts", {"name": name, "object_key": uploaded.object_key}
        )
        self.refresh()
        return Artifact.model_validate(artifact)

    def export_as_model(
        self,
        name: str | None = None,
        *,
        model: Ref | None = None,
        version: str,
        description: str = "",
        model_description: str = "",
        io: ModelIO | Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """A model version made of this experiment: in a new Model called `name`, or as a new version
        of an existing `model`. It inherits the artifacts as files, the base version's labelmap,
        detection type, entrypoint, image and io (unless `io` is given), the experiment's parameters and
        dataset versions, and the experiment as its source."""
        if (name is None) == (model is None):
            raise ValueError("give either the new model's name or an existing model")
        body: dict[str, Any] = {"version": version, "description": description}
        if model is not None:
            body["model_id"] = ref_id(model)
        else:
            body |= {"model_name": name, "model_description": model_description}
        if io is not None:
            body["io"] = as_json(io)
        return ModelVersion(self.client, self.client.api.post(f"{self.url}/export", body))
