"""Ingest's settings: the shared ones and its own."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import Settings, from_env


class IngestSettings(Settings):
    ingest_batch_records: int = Field(
        2000,
        ge=1,
        le=10_000,
        validation_alias=from_env("CVLOOP_INGEST_BATCH_RECORDS"),
        description="Most records ingest's consumers (predictions.raw, predictions) handle per poll.",
    )
    ingest_outbox_relay_after_s: float = Field(
        30.0,
        gt=0,
        validation_alias=from_env("CVLOOP_INGEST_OUTBOX_RELAY_AFTER_S"),
        description="How long an event ingest recorded waits for its own publish before the outbox relay "
        "(of any process) sends it instead (a crash between recording and publishing).",
    )
    ingest_cache_s: float = Field(
        2.0,
        ge=0,
        validation_alias=from_env("CVLOOP_INGEST_CACHE_S"),
        description="How long the monitor endpoint trusts an API key and a deployment's settings it read: "
        "a new threshold reaches ingest within this long (0: read on every request); a key revoked or "
        "given other scopes is forgotten as soon as its event arrives on `api-keys`, this long at worst.",
    )
    ingest_db_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        validation_alias=from_env("CVLOOP_INGEST_DB_POOL_SIZE"),
        description="Postgres connections of ingest.",
    )
