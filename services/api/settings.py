"""The control plane's settings: the shared ones and its own."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import Settings, from_env


class ApiSettings(Settings):
    api_max_upload_bytes: int = Field(
        1024 * 1024 * 1024,
        gt=0,
        validation_alias=from_env("CVLOOP_API_MAX_UPLOAD_BYTES"),
        description="Largest model file POST /v1/uploads accepts (images: CVLOOP_MAX_IMAGE_BYTES); "
        "a larger one answers 413.",
    )
    api_outbox_retry_s: float = Field(
        5.0,
        gt=0.0,
        validation_alias=from_env("CVLOOP_API_OUTBOX_RETRY_S"),
        description="How often the api's outbox relay sends the events that are due besides those a "
        "commit wakes it for (a failed publish, rows another process left behind).",
    )
    api_db_pool_size: int = Field(
        20,
        ge=1,
        le=200,
        validation_alias=from_env("CVLOOP_API_DB_POOL_SIZE"),
        description="Postgres connections of the api.",
    )
    api_image_url_ttl_s: int = Field(
        3600,
        gt=0,
        le=7 * 24 * 3600,
        validation_alias=from_env("CVLOOP_API_IMAGE_URL_TTL_S"),
        description="How long a predicted asset's presigned image_url stays valid.",
    )
    api_download_url_ttl_s: int = Field(
        900,
        gt=0,
        le=7 * 24 * 3600,
        validation_alias=from_env("CVLOOP_API_DOWNLOAD_URL_TTL_S"),
        description="How long the presigned URLs of GET /v1/model-versions/{id}/files stay valid.",
    )
