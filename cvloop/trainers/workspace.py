"""Reading the job workspace a training job or a processing runs in (its layout and files:
`schemas.job_workspace`) as the runner staged it in `$CVLOOP_JOB_DIR`, and writing `outputs/`. Every
problem raises JobInputError with the message people see as the run's failure reason."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.job_workspace import (
    BASE_MODEL_ONNX,
    JOB_DIR_ENV,
    MODEL_VERSION_FILE,
    PARAMETERS_FILE,
    AssetLine,
    JobWorkspace,
    ModelVersionFile,
)

P = TypeVar("P", bound=BaseModel)


class JobInputError(Exception):
    """The workspace does not hold what the job needs; the message names what and where."""


def describe(error: ValidationError) -> str:
    """Pydantic's errors as one line naming each bad field and the value it got."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(whole document)"
        got = f" (got {item['input']!r})" if item["type"] != "missing" else ""
        parts.append(f"{where}: {item['msg']}{got}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Workspace(JobWorkspace):
    """A workspace's reader: every problem raises JobInputError."""

    @classmethod
    def from_env(cls) -> Workspace:
        folder = os.environ.get(JOB_DIR_ENV)
        if not folder:
            raise JobInputError(f"{JOB_DIR_ENV} is not set: run me inside a job workspace")
        if not Path(folder).is_dir():
            raise JobInputError(f"{JOB_DIR_ENV}={folder} is not a folder")
        return cls(Path(folder))

    def _read(self, relative: str) -> bytes:
        try:
            return (self.root / relative).read_bytes()
        except FileNotFoundError:
            raise JobInputError(f"{relative} is missing from the job workspace") from None

    def _json(self, relative: str) -> Any:
        try:
            return json.loads(self._read(relative))
        except json.JSONDecodeError as exc:
            raise JobInputError(f"{relative} is not JSON: {exc}") from None

    def parameters(self, model: type[P]) -> P:
        try:
            return model.model_validate(self._json(PARAMETERS_FILE))
        except ValidationError as exc:
            raise JobInputError(f"{PARAMETERS_FILE}: {describe(exc)}") from None

    def base_model_version(self) -> ModelVersionFile:
        try:
            return ModelVersionFile.model_validate(self._json(MODEL_VERSION_FILE))
        except ValidationError as exc:
            raise JobInputError(f"{MODEL_VERSION_FILE}: {describe(exc)}") from None

    def base_model_bytes(self) -> bytes:
        return self._read(BASE_MODEL_ONNX)

    def aliases(self) -> list[str]:
        datasets = self.datasets
        return sorted(p.name for p in datasets.iterdir() if p.is_dir()) if datasets.is_dir() else []

    def assets(self, alias: str) -> Iterator[AssetLine]:
        relative = self.relative(self.assets_file(alias))
        for number, line in enumerate(self._read(relative).decode().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield AssetLine.model_validate_json(line)
            except ValidationError as exc:
                raise JobInputError(f"{relative} line {number}: {describe(exc)}") from None

    def asset_bytes(self, alias: str, asset: AssetLine) -> bytes:
        folder = self.dataset(alias).resolve()
        path = (folder / asset.file).resolve()
        if not path.is_relative_to(folder):
            raise JobInputError(
                f"asset {asset.asset_id} of {alias}: file {asset.file!r} leaves the alias folder"
            )
        try:
            return path.read_bytes()
        except FileNotFoundError:
            where = self.relative(self.dataset(alias) / asset.file)
            raise JobInputError(f"asset {asset.asset_id} of {alias}: {where} is missing") from None

    def write_output(self, name: str, data: bytes) -> Path:
        path = self.outputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write_json_output(self, name: str, value: Any) -> Path:
        return self.write_output(name, json.dumps(value, indent=2).encode())
