"""`cvloop projects create` against the real local Postgres."""

from __future__ import annotations

import asyncio
import re
from uuid import UUID, uuid4

import asyncpg
import pytest
from click.testing import CliRunner

from cvloop.cli import main
from schemas.vocabulary import Scope
from services.common.db.repositories.projects import authenticate, get_project
from services.common.settings import Settings, settings_env


def _run(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=settings_env(settings))
    return result.exit_code, result.stdout, result.stderr


def test_projects_create_prints_a_working_admin_key_once(postgres_settings: Settings) -> None:
    # A plain test: the command runs its own event loop, as it does for a user.
    name = f"acme-{uuid4().hex[:8]}"
    code, out, err = _run(postgres_settings, "projects", "create", name)
    assert code == 0, out + err
    project_id = UUID(re.search(r"^project\s+\S+\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    secret = re.search(r"^secret\s+(\S+)$", out, re.M).group(1)  # type: ignore[union-attr]
    assert "shown this once" in err
    asyncio.run(_check_key(postgres_settings, name, project_id, secret))


async def _check_key(settings: Settings, name: str, project_id: UUID, secret: str) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        key = await authenticate(conn, secret)
        assert key is not None and key.project_id == project_id
        assert set(key.scopes) == set(Scope)
        project = await get_project(conn, project_id)
        assert project is not None and project.name == name
    finally:
        await conn.close()


def test_projects_create_refuses_a_name_already_taken(postgres_settings: Settings) -> None:
    name = f"taken-{uuid4().hex[:8]}"
    assert _run(postgres_settings, "projects", "create", name)[0] == 0
    code, out, err = _run(postgres_settings, "projects", "create", name)
    assert code == 1
    assert f"a project named {name!r} already exists" in err
    assert "secret" not in out


@pytest.mark.parametrize("name", ["", "x" * 129])
def test_projects_create_refuses_a_bad_name(postgres_settings: Settings, name: str) -> None:
    code, _, err = _run(postgres_settings, "projects", "create", name)
    assert code == 1 and "1 to 128 characters" in err


def test_projects_create_says_when_postgres_is_unreachable(settings: Settings) -> None:
    closed = settings.model_copy(update={"database_url_setting": "postgresql://cvloop@127.0.0.1:9/cvloop"})
    code, _, err = _run(closed, "projects", "create", "nowhere")
    assert code == 1 and "cannot reach Postgres" in err
