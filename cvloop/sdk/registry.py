"""The registry's objects: labelmaps, datasets and their versions and assets, models and their
versions (files uploaded first), processings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.model_io import ModelIO
from schemas.predictions import DetectionType
from schemas.vocabulary import UploadKind

from .downloads import download_file, inside
from .jobs import Job
from .pagination import paginate
from .resource import Record, Ref, Resource, as_json, ids_by_alias, ref_id
from .uploads import FileSource, Progress, UploadedFile


class Labelmap(Resource):
    path = "/v1/labelmaps/{id}"

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def labels(self) -> list[str]:
        return self.data["labels"]


class Asset(Record):
    """An image in a dataset version, with its annotations."""

    @property
    def object_key(self) -> str:
        return self.data["object_key"]

    @property
    def annotations(self) -> list[dict[str, Any]]:
        return self.data.get("annotations", [])

    def delete(self) -> None:
        """Remove it from its dataset version (409 when a submitted prediction became it)."""
        self.client.api.delete(f"/v1/dataset-versions/{self.data['dataset_version_id']}/assets/{self.id}")


class DatasetVersion(Resource):
    path = "/v1/dataset-versions/{id}"

    @property
    def version(self) -> str:
        return self.data["version"]

    @property
    def detection_type(self) -> DetectionType:
        return DetectionType(self.data["detection_type"])

    def add_asset(
        self,
        image: FileSource | UploadedFile,
        annotation: BaseModel | Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> Asset:
        """Upload the image (unless already uploaded) and add it, with its ground truth if given."""
        uploaded = self.client.ensure_uploaded(image, UploadKind.IMAGES, progress)
        body: dict[str, Any] = {"object_key": uploaded.object_key}
        if annotation is not None:
            body["annotation"] = as_json(annotation)
        return Asset(self.client, self.client.api.post(f"{self.url}/assets", body))

    def list_assets(self, limit: int | None = None, offset: int = 0) -> list[Asset]:
        return [
            Asset(self.client, item)
            for item in paginate(self.client.api_page(f"{self.url}/assets"), limit=limit, offset=offset)
        ]


class Dataset(Resource):
    path = "/v1/datasets/{id}"

    @property
    def name(self) -> str:
        return self.data["name"]

    def create_version(
        self,
        version: str,
        detection_type: DetectionType | str,
        labelmap: Ref | None = None,
        description: str = "",
    ) -> DatasetVersion:
        body = {
            "version": version,
            "detection_type": DetectionType(detection_type).value,
            "labelmap_id": ref_id(labelmap) if labelmap is not None else None,
            "description": description,
        }
        return DatasetVersion(self.client, self.client.api.post(f"{self.url}/versions", body))

    def list_versions(self) -> list[DatasetVersion]:
        pages = paginate(self.client.api_page(f"{self.url}/versions"))
        return [DatasetVersion(self.client, item) for item in pages]

    def get_version(self, version: str) -> DatasetVersion:
        return self.client.one(self.list_versions(), "version", version, f"dataset {self.name!r}")


class Processing(Record):
    """A command or container image that runs on a model version (see ModelVersion.launch_processing)."""

    @property
    def name(self) -> str:
        return self.data["name"]

    def delete(self) -> None:
        """Delete it (409 once jobs ran it)."""
        self.client.api.delete(f"/v1/processings/{self.id}")


class ModelVersion(Resource):
    path = "/v1/model-versions/{id}"

    @property
    def version(self) -> str:
        return self.data["version"]

    @property
    def detection_type(self) -> DetectionType:
        return DetectionType(self.data["detection_type"])

    @property
    def files(self) -> dict[str, str]:
        """File name to object key."""
        return {f["name"]: f["object_key"] for f in self.data.get("files", [])}

    def get_model(self) -> Model:
        return self.client.get_model_by_id(self.data["model_id"])

    def download(self, folder: str | Path) -> list[Path]:
        """Fetch every file of the version into `folder` (made if missing) through the presigned URLs
        the API hands out, checking each file's sha256; answers the paths written."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        return [
            download_file(item["url"], inside(target, item["name"]), item["sha256"])
            for item in self.client.api.get(f"{self.url}/files")
        ]

    def delete(self) -> None:
        """Delete it (409 naming what still uses it: deployments, predictions, experiments, jobs)."""
        self.client.api.delete(self.url)

    def launch_processing(self, processing: Ref, parameters: Mapping[str, Any] | None = None) -> Job:
        """Run a processing on this model version; follow it with the Job (wait, logs)."""
        body = {"processing_id": ref_id(processing), "parameters": dict(parameters or {})}
        return Job(self.client, self.client.api.post(f"{self.url}/processings", body))


class Model(Resource):
    path = "/v1/models/{id}"

    @property
    def name(self) -> str:
        return self.data["name"]

    def create_version(
        self,
        version: str,
        detection_type: DetectionType | str,
        *,
        labelmap: Ref | None = None,
        files: Mapping[str, FileSource | UploadedFile] | None = None,
        io: ModelIO | Mapping[str, Any] | None = None,
        description: str = "",
        training_parameters: Mapping[str, Any] | None = None,
        training_entrypoint: str | None = None,
        training_image: str | None = None,
        source_experiment: Ref | None = None,
        dataset_versions: Mapping[str, Ref] | None = None,
        progress: Progress | None = None,
    ) -> ModelVersion:
        """A new version; each file (a path, bytes, or an UploadedFile) is uploaded first."""
        uploaded = {
            name: self.client.ensure_uploaded(source, UploadKind.MODELS, progress).object_key
            for name, source in (files or {}).items()
        }
        body = {
            "version": version,
            "detection_type": DetectionType(detection_type).value,
            "description": description,
            "labelmap_id": ref_id(labelmap) if labelmap is not None else None,
            "training_parameters": dict(training_parameters or {}),
            "training_entrypoint": training_entrypoint,
            "training_image": training_image,
            "source_experiment_id": ref_id(source_experiment) if source_experiment is not None else None,
            "dataset_versions": ids_by_alias(dataset_versions),
            "io": as_json(io) if io is not None else None,
            "files": uploaded,
        }
        return ModelVersion(self.client, self.client.api.post(f"{self.url}/versions", body))

    def list_versions(self) -> list[ModelVersion]:
        pages = paginate(self.client.api_page(f"{self.url}/versions"))
        return [ModelVersion(self.client, item) for item in pages]

    def get_version(self, version: str) -> ModelVersion:
        return self.client.one(self.list_versions(), "version", version, f"model {self.name!r}")
