"""The settings every service shares, from the environment; each service's own settings model
(services/<service>/settings.py) adds its variables to these.

A URL setting left unset points at the local stack (`cvloop up`); setting it points the
platform at an external server, and `cvloop up` then does not start that component.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.local_stack import DEFAULT_PORT_BASE, LOCAL_HOST, PortBase, PortOffset
from services.common.domain.images import MAX_PIXELS

LOCAL_DATABASE = "cvloop"  # the local Postgres's database and superuser
LOCAL_DATABASE_USER = "cvloop"


class Broker(StrEnum):
    """The Kafka-protocol broker the services talk to; it decides what their producers may ask of it."""

    KAFKA = "kafka"  # a real Kafka, at KAFKA_BOOTSTRAP_SERVERS
    TANSU = "tansu"  # tansu in memory, the local stack's broker (docs/local-stack.md)
    MOCK = "mock"  # librdkafka's mock cluster, the local stack's former broker: one member per group


def from_env(name: str) -> AliasChoices:
    """A field's environment variable (a test or the local stack may still pass the field by name)."""
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    state_dir: Path = Field(
        Path(".cvloop"),
        validation_alias=from_env("CVLOOP_STATE_DIR"),
        description="Folder holding the local stack's data, logs, pids and installed binaries.",
    )
    tools_dir_setting: Path | None = Field(
        None,
        validation_alias=from_env("CVLOOP_TOOLS_DIR"),
        description="Folder of binaries the local stack installs apart from the app (tritonserver). "
        "Unset: <state dir>/tools.",
    )
    port_base: PortBase = Field(
        DEFAULT_PORT_BASE,
        validation_alias=from_env("CVLOOP_PORT_BASE"),
        description="First loopback port of the local stack: Postgres +0, S3 +1, Triton HTTP +2, gRPC +3, "
        "metrics +4, serving +5, ingest +6, api +7, scoring +8, pipeline +9, job runner +10, the S3 server's "
        "own servers +11 to +18 and +10018, tansu +19 when it is the local broker. "
        "Keep every one below 32768 (Linux's ephemeral ports).",
    )
    drain_timeout_s: float = Field(
        60.0,
        ge=0,
        validation_alias=from_env("CVLOOP_DRAIN_TIMEOUT_S"),
        description="How long `cvloop down` waits for every consumer group to read what was produced "
        "before it stops the local broker, which forgets its messages.",
    )
    log_level: str = Field(
        "WARNING",
        validation_alias=from_env("CVLOOP_LOG_LEVEL"),
        description="Python log level of every service.",
    )

    database_url_setting: str | None = Field(
        None,
        validation_alias=from_env("DATABASE_URL"),
        description="Postgres DSN. Unset: the local Postgres on 127.0.0.1:<port base>.",
    )
    kafka_bootstrap_setting: str | None = Field(
        None,
        validation_alias=from_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers. Unset: the local broker, whose address `cvloop up` writes "
        "to <state dir>/kafka/bootstrap.",
    )
    kafka_broker_setting: Broker | None = Field(
        None,
        validation_alias=from_env("CVLOOP_KAFKA_BROKER"),
        description="Which broker the services talk to. Unset: `kafka` when KAFKA_BOOTSTRAP_SERVERS is set, "
        "else `tansu`, which `cvloop up` runs in memory on <port base>+19 (consumer groups of several "
        "members; producers send to it without idempotence, one record per batch). `mock`: `cvloop up` "
        "runs librdkafka's mock cluster instead (one member per consumer group). With "
        "KAFKA_BOOTSTRAP_SERVERS, `tansu` or `mock` says that the address is such a broker.",
    )
    s3_endpoint_setting: str | None = Field(
        None,
        validation_alias=from_env("S3_ENDPOINT"),
        description="S3 endpoint URL (MinIO in production). Unset: the local SeaweedFS on <port base>+1.",
    )
    s3_access_key: str = Field(
        "cvloop", validation_alias=from_env("S3_ACCESS_KEY"), description="S3 access key."
    )
    s3_secret_key: str = Field(
        "cvloop-secret", validation_alias=from_env("S3_SECRET_KEY"), description="S3 secret key."
    )
    s3_region: str = Field("us-east-1", validation_alias=from_env("S3_REGION"), description="S3 region.")
    s3_bucket: str = Field(
        "cvloop", validation_alias=from_env("S3_BUCKET"), description="Bucket holding images and model files."
    )
    triton_url_setting: str | None = Field(
        None,
        validation_alias=from_env("TRITON_URL"),
        description="Triton HTTP address host:port. Unset: the local tritonserver on <port base>+2.",
    )
    triton_grpc_url_setting: str | None = Field(
        None,
        validation_alias=from_env("TRITON_GRPC_URL"),
        description="Triton gRPC address host:port. Unset: <port base>+3 locally, or TRITON_URL's host on "
        "port 8001 when TRITON_URL is set.",
    )

    max_image_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        validation_alias=from_env("CVLOOP_MAX_IMAGE_BYTES"),
        description="Largest image file serving and ingest accept; a larger one answers 413.",
    )
    max_image_pixels: int = Field(
        MAX_PIXELS,
        gt=0,
        validation_alias=from_env("CVLOOP_MAX_IMAGE_PIXELS"),
        description="Most pixels (width x height, read from the header before decoding) of an image serving, "
        "ingest and the api accept; a larger one answers 413 naming `image`.",
    )

    bind_host: str = Field(
        "127.0.0.1",
        validation_alias=from_env("CVLOOP_BIND_HOST"),
        description="Address the HTTP services listen on (0.0.0.0 in a container).",
    )
    http_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias=from_env("CVLOOP_HTTP_PORT"),
        description="Port an HTTP service listens on. Unset: its local-stack port (see CVLOOP_PORT_BASE).",
    )

    @model_validator(mode="after")
    def _kafka_has_an_address(self) -> Self:
        if self.kafka_broker_setting is Broker.KAFKA and not self.kafka_bootstrap_setting:
            raise ValueError("CVLOOP_KAFKA_BROKER=kafka needs KAFKA_BOOTSTRAP_SERVERS")
        return self

    @property
    def state_path(self) -> Path:
        return self.state_dir.resolve()

    @property
    def tools_path(self) -> Path:
        return (self.tools_dir_setting or self.state_path / "tools").resolve()

    @property
    def local_database_password_file(self) -> Path:
        """The local Postgres's password, made by `cvloop up` (0600: jobs, run as another user, cannot
        read it)."""
        return self.state_path / "postgres.password"

    @property
    def database_url(self) -> str:
        if self.database_url_setting:
            return self.database_url_setting
        try:
            user = f"{LOCAL_DATABASE_USER}:{self.local_database_password_file.read_text().strip()}"
        except FileNotFoundError:  # a local Postgres not started yet, or started before passwords
            user = LOCAL_DATABASE_USER
        return f"postgresql://{user}@{LOCAL_HOST}:{self.postgres_port}/{LOCAL_DATABASE}"

    @property
    def postgres_port(self) -> int:
        return self.port_base + PortOffset.POSTGRES

    @property
    def kafka_bootstrap_file(self) -> Path:
        return self.state_path / "kafka" / "bootstrap"

    @property
    def kafka_bootstrap_servers(self) -> str:
        if self.kafka_bootstrap_setting:
            return self.kafka_bootstrap_setting
        try:
            return self.kafka_bootstrap_file.read_text().strip()
        except FileNotFoundError:
            raise RuntimeError(
                f"KAFKA_BOOTSTRAP_SERVERS is unset and {self.kafka_bootstrap_file} does not exist: "
                "start the local stack with `cvloop up` or set KAFKA_BOOTSTRAP_SERVERS"
            ) from None

    @property
    def kafka_broker(self) -> Broker:
        if self.kafka_broker_setting is not None:
            return self.kafka_broker_setting
        return Broker.KAFKA if self.kafka_bootstrap_setting else Broker.TANSU

    @property
    def runs_tansu(self) -> bool:
        """The broker is a tansu, so producers keep to what it can do."""
        return self.kafka_broker is Broker.TANSU

    @property
    def kafka_port(self) -> int:
        """The local tansu's port (the mock picks its own)."""
        return self.port_base + PortOffset.KAFKA

    @property
    def s3_port(self) -> int:
        return self.port_base + PortOffset.S3

    @property
    def s3_endpoint(self) -> str:
        return self.s3_endpoint_setting or f"http://{LOCAL_HOST}:{self.s3_port}"

    @property
    def triton_http_port(self) -> int:
        return self.port_base + PortOffset.TRITON_HTTP

    @property
    def triton_grpc_port(self) -> int:
        return self.port_base + PortOffset.TRITON_GRPC

    @property
    def triton_metrics_port(self) -> int:
        return self.port_base + PortOffset.TRITON_METRICS

    @property
    def triton_url(self) -> str:
        return self.triton_url_setting or f"{LOCAL_HOST}:{self.triton_http_port}"

    @property
    def triton_grpc_url(self) -> str:
        if self.triton_grpc_url_setting:
            return self.triton_grpc_url_setting
        if self.triton_url_setting:
            return f"{self.triton_url_setting.rsplit(':', 1)[0]}:8001"
        return f"{LOCAL_HOST}:{self.triton_grpc_port}"

    @property
    def serving_port(self) -> int:
        return self.port_base + PortOffset.SERVING

    @property
    def ingest_port(self) -> int:
        return self.port_base + PortOffset.INGEST

    @property
    def api_port(self) -> int:
        return self.port_base + PortOffset.API

    @property
    def scoring_port(self) -> int:
        return self.port_base + PortOffset.SCORING

    @property
    def pipeline_port(self) -> int:
        return self.port_base + PortOffset.PIPELINE

    @property
    def job_runner_port(self) -> int:
        return self.port_base + PortOffset.JOB_RUNNER

    def is_external(self, component: str) -> bool:
        """True when the component's URL setting points at a server `cvloop up` must not start."""
        field = {
            "postgres": "database_url_setting",
            "kafka": "kafka_bootstrap_setting",
            "s3": "s3_endpoint_setting",
            "triton": "triton_url_setting",
        }[component]
        return getattr(self, field) is not None

    def sharing_servers(self, **update: Any) -> Self:
        """These settings with Postgres, the broker and S3 named by address, for another process on the
        same servers (a replica, a test's second serving process) on a port base of its own, which they
        would follow otherwise."""
        named = {
            "database_url_setting": self.database_url,
            "kafka_bootstrap_setting": self.kafka_bootstrap_servers,
            "kafka_broker_setting": self.kafka_broker,
            "s3_endpoint_setting": self.s3_endpoint,
        }
        return self.model_copy(update=named | update)


def env_name(field: FieldInfo) -> str:
    """The environment variable a settings field is read from (its first alias)."""
    alias = field.validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else str(alias)


def settings_env(settings: BaseSettings, model: type[BaseSettings] | None = None) -> dict[str, str]:
    """The environment that makes a child process load the same settings: those of `model` (by default,
    all of `settings`), so the local stack hands each service the values of its own settings model."""
    env = {}
    for name, field in (model or type(settings)).model_fields.items():
        value = getattr(settings, name)
        if value is not None:
            text = str(value.resolve()) if isinstance(value, Path) else str(value)
            env[env_name(field)] = text
    return env
