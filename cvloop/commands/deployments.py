"""`cvloop deployments ...`: champion and shadow, and the review queue, from the command line."""

from __future__ import annotations

from uuid import UUID

import click

from cvloop.sdk import Client
from schemas.events import DeploymentKind
from schemas.vocabulary import PredictionOrder, ReviewStatus

from .sdk import with_client


@click.group()
def deployments() -> None:
    """Deployments, their champion and shadow, and what they predicted."""


@deployments.command("list")
@with_client
def deployments_list(client: Client) -> None:
    """List the project's deployments."""
    for deployment in client.list_deployments():
        click.echo(f"{deployment.name:<32} {deployment.kind:<16} {deployment.id}")


@deployments.command("create")
@click.argument("name")
@click.option(
    "--model-version", "model_version_id", type=click.UUID, required=True, help="The champion's id."
)
@click.option(
    "--kind",
    type=click.Choice([k.value for k in DeploymentKind]),
    default=DeploymentKind.MONITORING_ONLY.value,
    show_default=True,
)
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True)
@with_client
def deployments_create(
    client: Client, name: str, model_version_id: UUID, kind: str, threshold: float
) -> None:
    """Create a deployment whose champion is --model-version."""
    deployment = client.create_deployment(
        name,
        model_version_id,
        kind=kind,
        confidence_threshold=threshold,  # type: ignore[arg-type]
    )
    click.echo(f"{deployment.name}  {deployment.id}")


@deployments.command("show")
@click.argument("name")
@with_client
def deployments_show(client: Client, name: str) -> None:
    """Show a deployment's champion, shadow and threshold."""
    deployment = client.get_deployment(name)
    data = deployment.data
    click.echo(f"deployment  {deployment.name}  {deployment.id}")
    click.echo(f"kind        {deployment.kind}, {deployment.detection_type}")
    click.echo(f"champion    {data.get('champion_model_version_id')}")
    click.echo(f"shadow      {data.get('shadow_model_version_id') or '-'}")
    click.echo(f"threshold   {data.get('confidence_threshold')}")


@deployments.command("set-shadow")
@click.argument("name")
@click.argument("model_version_id", type=click.UUID)
@with_client
def deployments_set_shadow(client: Client, name: str, model_version_id: UUID) -> None:
    """Run MODEL_VERSION_ID as the shadow beside the champion."""
    deployment = client.get_deployment(name).set_shadow_model(model_version_id)
    click.echo(f"{deployment.name}: shadow {deployment.shadow_model_version_id}")


@deployments.command("promote-shadow")
@click.argument("name")
@with_client
def deployments_promote_shadow(client: Client, name: str) -> None:
    """Make the shadow the champion."""
    deployment = client.get_deployment(name).promote_shadow()
    click.echo(f"{deployment.name}: champion {deployment.champion_model_version_id}")


@deployments.command("predictions")
@click.argument("name")
@click.option("--status", type=click.Choice([s.value for s in ReviewStatus]), default=None)
@click.option(
    "--order",
    type=click.Choice([o.value for o in PredictionOrder]),
    default=PredictionOrder.NEWEST.value,
    show_default=True,
)
@click.option("--tag", "tags", multiple=True, help="Repeatable: all must match.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@with_client
def deployments_predictions(
    client: Client, name: str, status: str | None, order: str, tags: tuple[str, ...], limit: int
) -> None:
    """List predicted assets."""
    assets = client.get_deployment(name).list_predicted_assets(status, order=order, tags=tags, limit=limit)
    for asset in assets:
        score = asset.data.get("outlier_score")
        shown = "-" if score is None else f"{score:.3f}"
        click.echo(f"{asset.id}  {asset.status:<10} outlier {shown:<6} {asset.data.get('predicted_at')}")


@deployments.command("submit")
@click.argument("name")
@click.option(
    "--dataset-version",
    "dataset_version_id",
    type=click.UUID,
    required=True,
    help="A dataset version attached to the feedback loop.",
)
@click.option(
    "--prediction",
    "prediction_ids",
    type=click.UUID,
    multiple=True,
    help="Repeatable; default: every reviewed one.",
)
@with_client
def deployments_submit(
    client: Client, name: str, dataset_version_id: UUID, prediction_ids: tuple[UUID, ...]
) -> None:
    """Submit reviewed predicted assets to the feedback loop."""
    submitted = client.get_deployment(name).submit_to_feedback_loop(
        dataset_version_id, list(prediction_ids) or None
    )
    for item in submitted:
        click.echo(f"{item.prediction_id} -> asset {item.asset_id}")
    click.echo(f"{len(submitted)} submitted", err=True)
