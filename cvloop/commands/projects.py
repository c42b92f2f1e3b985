"""`cvloop projects create NAME`: an operator's command, straight to Postgres (the API has no route
that creates projects: every key belongs to one)."""

from __future__ import annotations

import asyncio

import asyncpg
import click

from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories.base import transaction
from services.common.db.repositories.projects import create_api_key, create_project
from services.common.domain.projects import ApiKey, Project
from services.common.settings import Settings

FIRST_KEY_NAME = "admin"


async def create_project_with_admin_key(dsn: str, name: str) -> tuple[Project, ApiKey, str]:
    """The project and its first key (every scope) in one transaction, the schema migrated first."""
    pool = await open_pool(dsn, max_size=1)
    try:
        async with transaction(pool) as conn:
            project = await create_project(conn, name)
            key, secret = await create_api_key(conn, project.id, FIRST_KEY_NAME, list(Scope))
    finally:
        await pool.close()
    return project, key, secret


@click.group()
def projects() -> None:
    """Projects (operator commands: they talk to Postgres at DATABASE_URL)."""


@projects.command("create")
@click.argument("name")
@click.pass_obj
def projects_create(settings: Settings, name: str) -> None:
    """Create project NAME and print its first admin key, once: it is stored only as a hash."""
    try:
        project, key, secret = asyncio.run(create_project_with_admin_key(settings.database_url, name))
    except asyncpg.UniqueViolationError:
        raise click.ClickException(f"a project named {name!r} already exists") from None
    except asyncpg.CheckViolationError:
        raise click.ClickException("a project name has 1 to 128 characters") from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise click.ClickException(f"cannot reach Postgres at DATABASE_URL: {exc}") from exc
    click.echo(f"project   {project.name}  {project.id}")
    click.echo(f"key       {key.name}  {key.id}  scopes {','.join(key.scopes)}")
    click.echo(f"secret    {secret}")
    click.echo("The secret is shown this once; use it as CVLOOP_API_KEY.", err=True)
