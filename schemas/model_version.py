"""The model-version contract: the files cvloop itself reads from a model version (a trainer writes them to
outputs/, they become its experiment's artifacts, then the exported version's files, which serving runs)
and how the versions cvloop makes are named."""

from __future__ import annotations

from uuid import UUID

MODEL_FILE = "model.onnx"  # the graph serving runs and a trainer starts from
CHECKPOINT_FILE = "model.pt"  # optional: a PyTorch trainer's weights beside the graph, to fine-tune from
LABELS_FILE = "labels.json"  # a JSON list of labels, index = class
METRICS_FILE = "metrics.json"  # optional {name: number}
# optional: how serving calls the trained graph (ModelIO JSON), when the trainer changed it (an image
# size); an export without it keeps the base version's io
IO_FILE = "io.json"

VERSION_LIMIT = 64  # model_versions.version


def version_names(name: str, unique: UUID) -> tuple[str, str]:
    """A made version's name within the limit and, should that one be taken (made by hand, say), the same
    ending with `unique`'s first 8 hex digits."""
    name = name[:VERSION_LIMIT]
    return name, f"{name[: VERSION_LIMIT - 9]}-{unique.hex[:8]}"
