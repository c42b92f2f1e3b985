"""`cvloop deployments ...`: champion and shadow, and the review queue, from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
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
    """Show a deployment's champion, shadow, threshold and pipeline settings."""
    deployment = client.get_deployment(name)
    data = deployment.data
    click.echo(f"deployment  {deployment.name}  {deployment.id}")
    click.echo(f"kind        {deployment.kind}, {deployment.detection_type}")
    click.echo(f"champion    {data.get('champion_model_version_id')}")
    click.echo(f"shadow      {data.get('shadow_model_version_id') or '-'}")
    click.echo(f"threshold   {data.get('confidence_threshold')}")
    for line in pipeline_lines(data):
        click.echo(line)


def _on(active: bool) -> str:
    return "active" if active else "inactive"


def pipeline_lines(data: dict[str, Any]) -> list[str]:
    """The pipeline settings of a deployment's answer: training data, feedback loop, CT, CD."""
    training = data["training_data"]
    feedback = data["feedback_loop"]["dataset_version_ids"]
    ct = data["continuous_training"]
    cd = data["continuous_deployment"]
    reference = training["status"] or "-"
    if training.get("reason"):
        reference += f" ({training['reason']})"
    aliases = ", ".join(f"{alias}={dv}" for alias, dv in ct["dataset_versions"].items()) or "-"
    return [
        "pipeline",
        f"  training data        {training['dataset_version_id'] or '-'}  reference {reference}",
        f"  feedback loop        {', '.join(feedback) or '-'}",
        f"  continuous training  {_on(ct['active'])}, threshold {ct['threshold'] or '-'}, "
        f"{ct['submitted_since_training']} submitted since the last training",
        f"    trigger policy     {json.dumps(ct.get('policy') or {}, sort_keys=True)}",
        f"    dataset versions   {aliases}",
        f"    parameters         {json.dumps(ct['training_parameters'], sort_keys=True)}",
        f"  continuous deploy.   {_on(cd['active'])}, policy {cd['policy']}",
    ]


@deployments.command("delete")
@click.argument("name")
@click.confirmation_option(prompt="Delete the deployment with its predictions and reports?")
@with_client
def deployments_delete(client: Client, name: str) -> None:
    """Delete a deployment with its predictions and reports."""
    client.get_deployment(name).delete()
    click.echo(f"{name}: deleted")


def _since(value: str) -> datetime:
    """`24h`, `90m`, `7d` ago, or an ISO 8601 moment."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give 24h, 90m, 7d or an ISO 8601 time") from None


def _span_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option(
        "--bucket", "bucket_s", type=click.IntRange(1), default=None, help="Bucket in seconds [3600]."
    )(command)
    command = click.option("--until", default=None, help="End: 2h, or ISO 8601 [now].")(command)
    return click.option("--since", default="24h", show_default=True, help="Start: 24h, 7d, or ISO 8601.")(
        command
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


@deployments.command("drift")
@click.argument("name")
@_span_options
@click.option("--flagged", is_flag=True, help="Only the windows that detected drift.")
@click.option("--features", "show_features", is_flag=True, help="A line per feature of each report.")
@with_client
def deployments_drift(
    client: Client,
    name: str,
    since: str,
    until: str | None,
    bucket_s: int | None,
    flagged: bool,
    show_features: bool,
) -> None:
    """Drift reports of the range: window, size, correction, drifted features."""
    reports = client.get_deployment(name).drift(
        _since(since), _since(until) if until else None, flagged=flagged
    )
    for report in reports:
        drifted = [f.feature for f in report.features if f.drifted]
        mark = "DRIFT" if report.drift_detected else "ok"
        click.echo(
            f"{_when(report.window_start)} .. {_when(report.window_end)}  {mark:<5} "
            f"n={report.window_size} {report.correction.value} alpha={report.alpha}  "
            f"{', '.join(drifted) or '-'}"
        )
        if show_features:
            for f in report.features:
                flag = " drifted" if f.drifted else ""
                click.echo(f"    {f.feature:<24} ks {f.statistic:.3f}  p {f.p_value:.2e}{flag}")
    click.echo(f"{len(reports)} reports, {sum(r.drift_detected for r in reports)} flagged", err=True)


@deployments.command("outliers")
@click.argument("name")
@_span_options
@click.option("--level", type=click.FloatRange(0.0, 1.0), default=0.99, show_default=True)
@click.option("--bins", type=click.IntRange(1, 100), default=10, show_default=True)
@with_client
def deployments_outliers(
    client: Client, name: str, since: str, until: str | None, bucket_s: int | None, level: float, bins: int
) -> None:
    """The outlier-score histogram, and per bucket the share of scores above --level."""
    answer = client.get_deployment(name).outliers(
        _since(since), _since(until) if until else None, bucket_s=bucket_s, level=level, bins=bins
    )
    for b in answer.histogram:
        click.echo(f"[{b.lower:.2f}, {b.upper:.2f})  {b.count}")
    for r in answer.buckets:
        click.echo(f"{_when(r.start)}  scored {r.scored:<8} above {level}: {r.above:<8} {r.rate:.1%}")


@deployments.command("latency")
@click.argument("name")
@_span_options
@with_client
def deployments_latency(
    client: Client, name: str, since: str, until: str | None, bucket_s: int | None
) -> None:
    """Predictions and latency p50/p95/p99 per bucket and role."""
    answer = client.get_deployment(name).latency(
        _since(since), _since(until) if until else None, bucket_s=bucket_s
    )
    for b in answer.buckets:
        click.echo(
            f"{_when(b.start)}  {b.role.value:<8} {b.predictions:<8} p50 {b.latency_p50_ms:.1f} ms  "
            f"p95 {b.latency_p95_ms:.1f} ms  p99 {b.latency_p99_ms:.1f} ms"
        )


def _figures(quality: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.3f}" if k != "reviewed" else f"reviewed {v:.0f}" for k, v in quality.items())


@deployments.command("quality")
@click.argument("name")
@_span_options
@with_client
def deployments_quality(
    client: Client, name: str, since: str, until: str | None, bucket_s: int | None
) -> None:
    """Champion and shadow against the reviews, per bucket of prediction time."""
    answer = client.get_deployment(name).quality(
        _since(since), _since(until) if until else None, bucket_s=bucket_s
    )
    for b in answer.buckets:
        click.echo(f"{_when(b.start)}  {b.role.value:<8} {_figures(b.quality)}")
    if answer.truncated:
        click.echo(f"only the first {answer.reviewed} reviews were looked at", err=True)


@deployments.command("comparison")
@click.argument("name")
@click.option("--window", type=click.IntRange(1, 5000), default=500, show_default=True)
@with_client
def deployments_comparison(client: Client, name: str, window: int) -> None:
    """Champion against shadow over the champion's latest predictions."""
    answer = client.get_deployment(name).comparison(window)
    for role, figures in (("champion", answer.champion), ("shadow", answer.shadow)):
        if figures is None:
            click.echo(f"{role:<9} -")
            continue
        p50 = "-" if figures.latency_p50_ms is None else f"{figures.latency_p50_ms:.1f}"
        p95 = "-" if figures.latency_p95_ms is None else f"{figures.latency_p95_ms:.1f}"
        click.echo(
            f"{role:<9} {figures.model_version_id}  {figures.predictions} predictions  "
            f"p50 {p50} ms  p95 {p95} ms  {_figures(figures.quality) or 'no reviews'}"
        )
    agreement = "-" if answer.agreement is None else f"{answer.agreement:.3f}"
    click.echo(f"agreement {agreement}")


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
