"""The SDK's entry point: `Client()` reads CVLOOP_API_URL, CVLOOP_INGEST_URL, CVLOOP_SERVING_URL and
CVLOOP_API_KEY (unset URLs: the local stack), and hands out the project's objects.

    client = Client()
    deployment = client.get_deployment("belt-camera")
    deployment.monitor("frame.jpg", latency=12.5, prediction=...)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

import httpx

from schemas.events import DeploymentKind
from schemas.vocabulary import UploadKind

from . import errors
from .deployments import Deployment
from .experiments import Experiment
from .jobs import Job
from .pagination import FetchPage, paginate
from .registry import Dataset, DatasetVersion, Labelmap, Model, ModelVersion, Processing
from .resource import Record, Ref, ids_by_alias, ref_id
from .retry import RetryPolicy
from .settings import SdkSettings
from .transport import Transport
from .uploads import FileSource, Progress, ProgressReader, UploadedFile, content_type, open_source

R = TypeVar("R", bound=Record)


class Client:
    def __init__(
        self,
        api_key: str | None = None,
        *,
        api_url: str | None = None,
        ingest_url: str | None = None,
        serving_url: str | None = None,
        settings: SdkSettings | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Arguments override the settings (the environment). `http_transport` replaces the network,
        for tests of the SDK's own logic."""
        settings = settings or SdkSettings()
        key = api_key or settings.api_key
        if not key:
            raise errors.CvloopError("no API key: pass api_key or set CVLOOP_API_KEY")
        options: dict[str, Any] = {
            "retry": retry or RetryPolicy(),
            "timeout": timeout,
            "http_transport": http_transport,
        }
        self.api = Transport(api_url or settings.api_url, key, **options)
        self.ingest = Transport(ingest_url or settings.ingest_url, key, **options)
        self.serving = Transport(serving_url or settings.serving_url, key, **options)

    def close(self) -> None:
        for transport in (self.api, self.ingest, self.serving):
            transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Helpers the objects share ----------------------------------------------------------------

    def api_page(self, path: str, params: Mapping[str, Any] | None = None) -> FetchPage:
        def fetch(limit: int, offset: int) -> dict[str, Any]:
            return self.api.get(path, {**(params or {}), "limit": limit, "offset": offset})

        return fetch

    def _list(self, cls: type[R], path: str, params: Mapping[str, Any] | None = None) -> list[R]:
        return [cls(self, item) for item in paginate(self.api_page(path, params))]

    @staticmethod
    def one(items: Sequence[R], field: str, value: str, where: str) -> R:
        for item in items:
            if item.data.get(field) == value:
                return item
        raise errors.NotFound(404, f"{where} has no {field} {value!r}")

    def _by_name(self, cls: type[R], path: str, name: str, what: str) -> R:
        return self.one(self._list(cls, path, {"name": name}), "name", name, f"this project ({what})")

    # Project and keys -------------------------------------------------------------------------

    def get_project(self) -> dict[str, Any]:
        return self.api.get("/v1/project")

    def create_api_key(self, name: str, scopes: Sequence[str]) -> dict[str, Any]:
        """A new key of this project; its `secret` is in this answer only (admin scope)."""
        return self.api.post("/v1/api-keys", {"name": name, "scopes": list(scopes)})

    def list_api_keys(self) -> list[dict[str, Any]]:
        return list(paginate(self.api_page("/v1/api-keys")))

    def set_api_key_scopes(self, key_id: UUID | str, scopes: Sequence[str]) -> dict[str, Any]:
        return self.api.put(f"/v1/api-keys/{ref_id(key_id)}/scopes", {"scopes": list(scopes)})

    def revoke_api_key(self, key_id: UUID | str) -> None:
        self.api.delete(f"/v1/api-keys/{ref_id(key_id)}")

    # Uploads ----------------------------------------------------------------------------------

    def upload(
        self, source: FileSource, kind: UploadKind | str, progress: Progress | None = None
    ) -> UploadedFile:
        """Store a file (images: an image to add or monitor; models: a model or artifact file).
        Content-addressed: the same bytes give the same key, so a retry is safe."""
        raw, name, owned = open_source(source)
        try:
            reader = ProgressReader(raw, progress)
            response = self.api.request(
                "POST",
                "/v1/uploads",
                params={"kind": UploadKind(kind).value},
                files={"file": (name, reader, content_type(name))},
                idempotent_post=True,
            )
        finally:
            if owned:
                raw.close()
        return UploadedFile.model_validate(response.json())

    def ensure_uploaded(
        self, source: FileSource | UploadedFile, kind: UploadKind | str, progress: Progress | None = None
    ) -> UploadedFile:
        return source if isinstance(source, UploadedFile) else self.upload(source, kind, progress)

    # Registry ---------------------------------------------------------------------------------

    def create_labelmap(self, name: str, labels: Sequence[str]) -> Labelmap:
        return Labelmap(self, self.api.post("/v1/labelmaps", {"name": name, "labels": list(labels)}))

    def get_labelmap(self, labelmap_id: UUID | str) -> Labelmap:
        return Labelmap(self, self.api.get(f"/v1/labelmaps/{ref_id(labelmap_id)}"))

    def list_labelmaps(self, name: str | None = None) -> list[Labelmap]:
        return self._list(Labelmap, "/v1/labelmaps", {"name": name})

    def create_dataset(self, name: str, description: str = "") -> Dataset:
        return Dataset(self, self.api.post("/v1/datasets", {"name": name, "description": description}))

    def get_dataset(self, name: str) -> Dataset:
        return self._by_name(Dataset, "/v1/datasets", name, "datasets")

    def get_dataset_by_id(self, dataset_id: UUID | str) -> Dataset:
        return Dataset(self, self.api.get(f"/v1/datasets/{ref_id(dataset_id)}"))

    def list_datasets(self) -> list[Dataset]:
        return self._list(Dataset, "/v1/datasets")

    def get_dataset_version_by_id(self, dataset_version_id: UUID | str) -> DatasetVersion:
        return DatasetVersion(self, self.api.get(f"/v1/dataset-versions/{ref_id(dataset_version_id)}"))

    def create_model(self, name: str, description: str = "") -> Model:
        return Model(self, self.api.post("/v1/models", {"name": name, "description": description}))

    def get_model(self, name: str) -> Model:
        return self._by_name(Model, "/v1/models", name, "models")

    def get_model_by_id(self, model_id: UUID | str) -> Model:
        return Model(self, self.api.get(f"/v1/models/{ref_id(model_id)}"))

    def list_models(self) -> list[Model]:
        return self._list(Model, "/v1/models")

    def get_model_version_by_id(self, model_version_id: UUID | str) -> ModelVersion:
        return ModelVersion(self, self.api.get(f"/v1/model-versions/{ref_id(model_version_id)}"))

    def create_processing(
        self,
        name: str,
        *,
        command: Sequence[str] | None = None,
        image: str | None = None,
        description: str = "",
        parameters_schema: Mapping[str, Any] | None = None,
    ) -> Processing:
        """Register code the platform's machines run: the client's key needs the admin scope
        (`Forbidden` otherwise)."""
        body = {
            "name": name,
            "description": description,
            "command": list(command) if command is not None else None,
            "image": image,
            "parameters_schema": dict(parameters_schema or {}),
        }
        return Processing(self, self.api.post("/v1/processings", body))

    def list_processings(self) -> list[Processing]:
        return self._list(Processing, "/v1/processings")

    def get_processing(self, name: str) -> Processing:
        return self.one(self.list_processings(), "name", name, "this project (processings)")

    # Experiments ------------------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        base_model_version: Ref | None = None,
        parameters: Mapping[str, Any] | None = None,
        dataset_versions: Mapping[str, Ref] | None = None,
    ) -> Experiment:
        body = {
            "name": name,
            "base_model_version_id": ref_id(base_model_version) if base_model_version is not None else None,
            "parameters": dict(parameters or {}),
            "dataset_versions": ids_by_alias(dataset_versions),
        }
        return Experiment(self, self.api.post("/v1/experiments", body))

    def get_experiment(self, name: str) -> Experiment:
        found = self._by_name(Experiment, "/v1/experiments", name, "experiments")
        return found.refresh()  # the list leaves out artifacts

    def get_experiment_by_id(self, experiment_id: UUID | str) -> Experiment:
        return Experiment(self, self.api.get(f"/v1/experiments/{ref_id(experiment_id)}"))

    # Deployments ------------------------------------------------------------------------------

    def create_deployment(
        self,
        name: str,
        model_version: Ref,
        *,
        kind: DeploymentKind | str = DeploymentKind.MONITORING_ONLY,
        confidence_threshold: float = 0.0,
    ) -> Deployment:
        """A deployment whose champion is `model_version`: `served` (cvloop runs it) or
        `monitoring_only` (predictions made elsewhere are logged with Deployment.monitor)."""
        body = {
            "name": name,
            "kind": DeploymentKind(kind).value,
            "model_version_id": ref_id(model_version),
            "confidence_threshold": confidence_threshold,
        }
        return Deployment(self, self.api.post("/v1/deployments", body))

    def get_deployment(self, name: str) -> Deployment:
        found = self._by_name(Deployment, "/v1/deployments", name, "deployments")
        return found.refresh()  # the one answer that carries its pipeline settings

    def get_deployment_by_id(self, deployment_id: UUID | str) -> Deployment:
        return Deployment(self, self.api.get(f"/v1/deployments/{ref_id(deployment_id)}"))

    def list_deployments(self) -> list[Deployment]:
        return self._list(Deployment, "/v1/deployments")

    # Jobs -------------------------------------------------------------------------------------

    def list_jobs(self, kind: str | None = None) -> list[Job]:
        return self._list(Job, "/v1/jobs", {"kind": kind})

    def get_job(self, job_id: UUID | str) -> Job:
        return Job(self, self.api.get(f"/v1/jobs/{ref_id(job_id)}"))
