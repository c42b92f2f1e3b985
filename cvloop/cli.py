"""The `cvloop` command line."""

from __future__ import annotations

import sys

import click

from services.common.logs import configure_logging

from .commands.demo import demo
from .commands.deployments import deployments
from .commands.jobs import jobs
from .commands.projects import projects
from .commands.registry import labelmaps, models, project, upload
from .stack import stack
from .stack.component import Health
from .stack.process import StackError
from .stack.settings import StackSettings


def _print_health(health: Health) -> None:
    colour = "green" if health.ok else ("yellow" if health.state == "stopped" else "red")
    detail = f"  {health.detail}" if health.detail else ""
    click.echo(f"{health.name:<14} {click.style(health.state, fg=colour):<18} {health.address}{detail}")


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """cvloop: keep computer-vision models good in production."""
    ctx.obj = StackSettings()
    configure_logging(ctx.obj.log_level)


@main.command()
@click.option("--only", multiple=True, help="Start only these components (repeatable).")
@click.pass_obj
def up(settings: StackSettings, only: tuple[str, ...]) -> None:
    """Install what is missing and start the local stack; stops at the first component that fails."""
    click.echo(f"local stack in {settings.state_path}")
    try:
        for health in stack.up(settings, list(only) or None):
            _print_health(health)
    except (StackError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--only", multiple=True, help="Stop only these components (repeatable).")
@click.pass_obj
def down(settings: StackSettings, only: tuple[str, ...]) -> None:
    """Stop the local stack (its data stays in the state folder)."""
    drained = True
    for step in stack.down(settings, list(only) or None):
        detail = f"  {step.detail}" if step.detail else ""
        colour = "red" if not step.ok else ("green" if step.state == "drained" else "yellow")
        click.echo(f"{step.name:<10} {click.style(step.state, fg=colour)}{detail}")
        drained = drained and step.ok
    if not drained:
        sys.exit(1)


@main.command()
@click.pass_obj
def status(settings: StackSettings) -> None:
    """Show each component's health; exits 1 unless every one is healthy."""
    healths = stack.status(settings)
    for health in healths:
        _print_health(health)
    if not all(h.ok for h in healths):
        sys.exit(1)


@main.group()
def topics() -> None:
    """Kafka topics of the registry."""


@topics.command("create")
@click.pass_obj
def topics_create(settings: StackSettings) -> None:
    """Create every registry topic on KAFKA_BOOTSTRAP_SERVERS (a real Kafka) through the admin API;
    exits 1 when one could not be created. On the local broker, checks the topics it made at start."""
    from aiokafka.errors import KafkaError

    from services.common.kafka.admin import create_topics

    try:
        results = create_topics(settings)
    except (KafkaError, RuntimeError) as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap_setting or 'the local broker'}: {exc}"
        ) from exc
    for name, outcome in results:
        click.echo(f"{name:<44} {outcome}")
    if any(outcome.startswith("failed") for _, outcome in results):
        sys.exit(1)


for command in (projects, project, upload, models, labelmaps, deployments, jobs, demo):
    main.add_command(command)

if __name__ == "__main__":
    main()
