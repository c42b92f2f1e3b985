"""Numbered SQL migrations (migrations/NNNN_name.sql), each applied once, in order, in a transaction.

An advisory lock serialises concurrent starters: the second one waits, then finds nothing to do.
A migration file renumbered after it was applied (0006_job_runner became 0005 to close a gap) is known
by its checksum: its record takes the new number, and its SQL does not run again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary but fixed: every cvloop process takes the same lock (a bigint in one namespace).
ADVISORY_LOCK_KEY = 0x63766C6F6F70  # "cvloop"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migration files or the database's record of them are inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        migrations[version] = Migration(version, match.group(2), path.read_text())
    return [migrations[v] for v in sorted(migrations)]


async def migrate(conn: asyncpg.Connection, folder: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the pending migrations; return the versions applied (none when up to date)."""
    migrations = discover(folder)
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version     integer PRIMARY KEY,
                   name        text NOT NULL,
                   checksum    text NOT NULL,
                   applied_at  timestamptz NOT NULL DEFAULT now()
               )"""
        )
        applied = {
            row["version"]: row["checksum"]
            for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        applied = await _renumber(conn, migrations, applied)
        done: list[int] = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            logger.info("migration applied", extra={"version": migration.version, "name": migration.name})
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


async def _renumber(
    conn: asyncpg.Connection, migrations: list[Migration], applied: dict[int, str]
) -> dict[int, str]:
    """Give the records of renumbered migrations their files' numbers, all in one transaction; the
    applied versions and checksums after it. A record is renumbered when no file of its version has its
    checksum and a file that is not recorded under its own version has."""
    files = {m.version: m.checksum for m in migrations}
    orphans = {checksum: version for version, checksum in applied.items() if files.get(version) != checksum}
    moves = [
        (orphans[m.checksum], m)
        for m in migrations
        if applied.get(m.version) != m.checksum and m.checksum in orphans
    ]
    if not moves:
        return applied
    async with conn.transaction():
        for old, migration in moves:
            await conn.execute(
                "UPDATE schema_migrations SET version = $2, name = $3 WHERE version = $1",
                old,
                migration.version,
                migration.name,
            )
            logger.info(
                "migration renumbered",
                extra={"version": migration.version, "was": old, "name": migration.name},
            )
    renumbered = dict(applied)
    for old, migration in moves:
        del renumbered[old]
        renumbered[migration.version] = migration.checksum
    return renumbered
