"""`cvloop project`, `cvloop upload`, `cvloop models ...`: the registry from the command line."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import click
from pydantic import ValidationError

from cvloop.sdk import Client, NotFound
from schemas.model_io import ModelIO
from schemas.predictions import DetectionType
from schemas.vocabulary import UploadKind

from .sdk import upload_with_bar, with_client

DETECTION_TYPES = click.Choice([t.value for t in DetectionType])


@click.command("project")
@with_client
def project(client: Client) -> None:
    """Show the project the API key belongs to."""
    answer = client.get_project()
    click.echo(f"{answer['name']}  {answer['id']}")


@click.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice([k.value for k in UploadKind]),
    default=UploadKind.MODELS.value,
    show_default=True,
)
@with_client
def upload(client: Client, path: Path, kind: str) -> None:
    """Store a file; prints its object key."""
    click.echo(upload_with_bar(client, path, kind).object_key)  # type: ignore[arg-type]


@click.group()
def models() -> None:
    """Models and their versions."""


@models.command("list")
@with_client
def models_list(client: Client) -> None:
    """List the project's models."""
    for model in client.list_models():
        click.echo(f"{model.name:<32} {model.id}")


@models.command("create")
@click.argument("name")
@click.option("--description", default="")
@with_client
def models_create(client: Client, name: str, description: str) -> None:
    """Create a model (its versions come with `models push`)."""
    model = client.create_model(name, description)
    click.echo(f"{model.name}  {model.id}")


def _named_file(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not Path(path).is_file():
        raise click.BadParameter(f"{value!r}: give NAME=PATH of an existing file", param_hint="--file")
    return name, Path(path)


def _model_io(path: Path) -> ModelIO:
    try:
        return ModelIO.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--io") from None


@models.command("push")
@click.argument("model_name")
@click.argument("version")
@click.option("--detection-type", type=DETECTION_TYPES, required=True)
@click.option("--file", "files", multiple=True, help="NAME=PATH, repeatable: the version's files.")
@click.option("--labelmap-id", type=click.UUID, default=None)
@click.option(
    "--io",
    "io_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON file of the version's io (how serving calls it).",
)
@click.option("--description", default="")
@click.option("--create", is_flag=True, help="Create the model when it does not exist.")
@with_client
def models_push(
    client: Client,
    model_name: str,
    version: str,
    detection_type: str,
    files: tuple[str, ...],
    labelmap_id: UUID | None,
    io_path: Path | None,
    description: str,
    create: bool,
) -> None:
    """Upload files (with a progress bar each) and register them as VERSION of MODEL_NAME."""
    named = dict(_named_file(value) for value in files)
    io = _model_io(io_path) if io_path else None
    try:
        model = client.get_model(model_name)
    except NotFound:
        if not create:
            raise
        model = client.create_model(model_name)
    uploaded = {name: upload_with_bar(client, path, UploadKind.MODELS) for name, path in named.items()}
    model_version = model.create_version(
        version, detection_type, labelmap=labelmap_id, files=uploaded, io=io, description=description
    )
    click.echo(f"{model.name} {model_version.version}  {model_version.id}")


@models.command("download")
@click.argument("model_name")
@click.argument("version")
@click.option(
    "--to",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to write the files into.",
)
@with_client
def models_download(client: Client, model_name: str, version: str, folder: Path) -> None:
    """Fetch VERSION of MODEL_NAME's files (checked against their sha256); prints each path."""
    for path in client.get_model(model_name).get_version(version).download(folder):
        click.echo(str(path))


@models.command("delete-version")
@click.argument("model_name")
@click.argument("version")
@with_client
def models_delete_version(client: Client, model_name: str, version: str) -> None:
    """Delete a version nothing uses (the answer names what still does)."""
    client.get_model(model_name).get_version(version).delete()
    click.echo(f"{model_name} {version}: deleted")


@click.group()
def labelmaps() -> None:
    """Labelmaps."""


@labelmaps.command("list")
@with_client
def labelmaps_list(client: Client) -> None:
    """List the project's labelmaps."""
    for labelmap in client.list_labelmaps():
        click.echo(f"{labelmap.name:<32} {len(labelmap.labels):>5} labels  {labelmap.id}")
