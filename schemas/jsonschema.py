"""JSON Schema files generated from the models, for producers written in other languages, and for
trainers written in them: the files of the job workspace.

`python -m schemas.jsonschema` rewrites `schemas/json/`; a test fails when the files are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .codec import TOPIC_EVENTS
from .job_workspace import FILE_MODELS

JSON_DIR = Path(__file__).parent / "json"


def _file_name(model_type: str) -> str:
    return f"{model_type}.schema.json"


def generate() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of every event, in the order of the topic registry, then of every file
    of the job workspace (as the runner writes them: every field present)."""
    schemas: dict[str, dict[str, Any]] = {}
    for topic, models in TOPIC_EVENTS.items():
        for model in models:
            schema = model.model_json_schema(mode="validation")
            event_type = model.model_fields["type"].default
            schema["$id"] = f"urn:cvloop:event:{event_type}:v{model.model_fields['schema_version'].default}"
            schema["x-cvloop-topic"] = topic.value
            schemas[_file_name(event_type)] = schema
    for name, file_model in FILE_MODELS.items():
        schema = file_model.model_json_schema(mode="serialization")
        schema["$id"] = f"urn:cvloop:{name}"
        schemas[_file_name(name)] = schema
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    wanted = generate()
    for stale in directory.glob("*.schema.json"):
        if stale.name not in wanted:
            stale.unlink()
    paths = []
    for name, schema in wanted.items():
        path = directory / name
        path.write_text(render(schema))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write():
        print(written)
