"""Each enumerated column's SQL CHECK constraint allows exactly the values of its enum in
schemas.vocabulary (or schemas.events / schemas.predictions for the vocabularies events carry), read back
from pg_constraint on a freshly migrated database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from enum import StrEnum

import asyncpg
import pytest

from schemas.events import DeploymentKind, JobKind, MultipleTestingCorrection
from schemas.predictions import DetectionType
from schemas.vocabulary import (
    DeploymentPolicy,
    ExperimentStatus,
    GateOutcome,
    ReferenceStatus,
    ReplayStatus,
    ReviewStatus,
    RunStatus,
    Scope,
    TargetType,
)
from services.common.db.migrations import migrate
from services.common.settings import Settings
from tests.api_support import new_database

# (table, column) -> the values its CHECK allows. A processing runs on a model or dataset version only.
EXPECTED: dict[tuple[str, str], set[StrEnum]] = {
    ("api_keys", "scopes"): set(Scope),
    ("model_versions", "detection_type"): set(DetectionType),
    ("dataset_versions", "detection_type"): set(DetectionType),
    ("deployments", "detection_type"): set(DetectionType),
    ("deployments", "kind"): set(DeploymentKind),
    ("deployments", "reference_status"): set(ReferenceStatus),
    ("deployments", "cd_policy"): set(DeploymentPolicy),
    ("experiments", "status"): set(ExperimentStatus),
    ("predicted_assets", "status"): set(ReviewStatus),
    ("drift_reports", "correction"): set(MultipleTestingCorrection),
    ("processings", "target_type"): {TargetType.DATASET_VERSION, TargetType.MODEL_VERSION},
    ("jobs", "kind"): set(JobKind),
    ("jobs", "target_type"): set(TargetType),
    ("job_runs", "status"): set(RunStatus),
    ("gate_decisions", "outcome"): set(GateOutcome),
    ("shadow_replays", "status"): set(ReplayStatus),
}

# `col IN (...)` reads back as `col = ANY (ARRAY[...])`; `col <@ ARRAY[...]` stays as written.
_ENUMERATED = re.compile(r"\(?(\w+) (?:= ANY \(|<@ )ARRAY\[([^\]]*)\]")
_VALUE = re.compile(r"'([^']*)'::text")


@pytest.fixture
async def conn(postgres_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    async for dsn in new_database(postgres_settings.database_url, "vocabulary"):
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            yield conn
        finally:
            await conn.close()


async def test_every_enumerated_check_matches_its_enum(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        """SELECT conrelid::regclass::text AS table_name, conname, pg_get_constraintdef(oid) AS definition
           FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace"""
    )
    found: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        for column, values in _ENUMERATED.findall(row["definition"]):
            # Only a column's own CHECK (named <table>_<column>_check) lists its vocabulary; the table's
            # rules between columns (e.g. a finished run's statuses) are not a vocabulary.
            if row["conname"] == f"{row['table_name']}_{column}_check":
                found[(row["table_name"], column)] = set(_VALUE.findall(values))
    assert set(found) == set(EXPECTED)
    for column, values in EXPECTED.items():
        assert found[column] == {v.value for v in values}, column
