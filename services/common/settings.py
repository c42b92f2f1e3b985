"""Every setting cvloop reads, in one place, from the environment.

A URL setting left unset points at the local stack (`cvloop up`); setting it points the
platform at an external server, and `cvloop up` then does not start that component.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.events import MultipleTestingCorrection
from schemas.vocabulary import ModelBackend

LOCAL_HOST = "127.0.0.1"
LOCAL_DATABASE = "cvloop"  # the local Postgres's database and superuser
LOCAL_DATABASE_USER = "cvloop"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    state_dir: Path = Field(
        Path(".cvloop"),
        validation_alias=_env("CVLOOP_STATE_DIR"),
        description="Folder holding the local stack's data, logs, pids and installed binaries.",
    )
    tools_dir_setting: Path | None = Field(
        None,
        validation_alias=_env("CVLOOP_TOOLS_DIR"),
        description="Folder of binaries the local stack installs apart from the app (tritonserver). "
        "Unset: <state dir>/tools.",
    )
    port_base: int = Field(
        54320,
        ge=1024,
        le=65500,
        validation_alias=_env("CVLOOP_PORT_BASE"),
        description="First loopback port of the local stack: Postgres +0, S3 +1, Triton HTTP +2, gRPC +3, "
        "metrics +4, serving +5, ingest +6, api +7, scoring +8, pipeline +9, job runner +10.",
    )
    log_level: str = Field(
        "WARNING", validation_alias=_env("CVLOOP_LOG_LEVEL"), description="Python log level of every service."
    )

    database_url_setting: str | None = Field(
        None,
        validation_alias=_env("DATABASE_URL"),
        description="Postgres DSN. Unset: the local Postgres on 127.0.0.1:<port base>.",
    )
    kafka_bootstrap_setting: str | None = Field(
        None,
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers. Unset: the local mock broker, whose address `cvloop up` writes "
        "to <state dir>/kafka/bootstrap.",
    )
    s3_endpoint_setting: str | None = Field(
        None,
        validation_alias=_env("S3_ENDPOINT"),
        description="S3 endpoint URL (MinIO in production). Unset: the local moto server on <port base>+1.",
    )
    s3_access_key: str = Field("cvloop", validation_alias=_env("S3_ACCESS_KEY"), description="S3 access key.")
    s3_secret_key: str = Field(
        "cvloop-secret", validation_alias=_env("S3_SECRET_KEY"), description="S3 secret key."
    )
    s3_region: str = Field("us-east-1", validation_alias=_env("S3_REGION"), description="S3 region.")
    s3_bucket: str = Field(
        "cvloop", validation_alias=_env("S3_BUCKET"), description="Bucket holding images and model files."
    )
    triton_url_setting: str | None = Field(
        None,
        validation_alias=_env("TRITON_URL"),
        description="Triton HTTP address host:port. Unset: the local tritonserver on <port base>+2.",
    )
    triton_grpc_url_setting: str | None = Field(
        None,
        validation_alias=_env("TRITON_GRPC_URL"),
        description="Triton gRPC address host:port. Unset: <port base>+3 locally, or TRITON_URL's host on "
        "port 8001 when TRITON_URL is set.",
    )

    triton_model_backend: ModelBackend = Field(
        ModelBackend.PYTHON,
        validation_alias=_env("TRITON_MODEL_BACKEND"),
        description="How Triton runs a model version's ONNX file: `python` (a python-backend wrapper around "
        "onnxruntime, what the local tritonserver can run) or `onnxruntime` (Triton's own backend, on a "
        "cluster).",
    )
    max_image_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        validation_alias=_env("CVLOOP_MAX_IMAGE_BYTES"),
        description="Largest image file serving and ingest accept; a larger one answers 413.",
    )

    bind_host: str = Field(
        "127.0.0.1",
        validation_alias=_env("CVLOOP_BIND_HOST"),
        description="Address the HTTP services listen on (0.0.0.0 in a container).",
    )
    http_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias=_env("CVLOOP_HTTP_PORT"),
        description="Port an HTTP service listens on. Unset: its local-stack port (see CVLOOP_PORT_BASE).",
    )

    # --- serving (services/serving) ---
    serving_shadow_budget_ms: int = Field(
        1000,
        gt=0,
        validation_alias=_env("CVLOOP_SERVING_SHADOW_BUDGET_MS"),
        description="How long serving waits for a shadow's answer after the champion's; a later one is "
        "dropped and the event records why.",
    )
    serving_max_shadow_in_flight: int = Field(
        64,
        ge=0,
        validation_alias=_env("CVLOOP_SERVING_MAX_SHADOW_IN_FLIGHT"),
        description="Shadow calls one serving process runs at once; beyond it a request's shadow is "
        "skipped (counted as dropped), so a slow shadow cannot pile up work.",
    )
    serving_triton_timeout_ms: int = Field(
        10000,
        gt=0,
        validation_alias=_env("CVLOOP_SERVING_TRITON_TIMEOUT_MS"),
        description="Longest champion call to Triton; past it the request answers 503.",
    )
    serving_reconcile_interval_s: float = Field(
        5.0,
        gt=0,
        validation_alias=_env("CVLOOP_SERVING_RECONCILE_INTERVAL_S"),
        description="How often serving checks that its models are loaded on Triton, reloading what a "
        "restarted or unreachable Triton lost.",
    )
    serving_auth_cache_s: float = Field(
        30.0,
        ge=0,
        validation_alias=_env("CVLOOP_SERVING_AUTH_CACHE_S"),
        description="How long serving trusts an API key it checked (a revoked key works at most this long).",
    )

    # --- ingest (services/ingest) ---
    ingest_batch_records: int = Field(
        2000,
        ge=1,
        le=10_000,
        validation_alias=_env("CVLOOP_INGEST_BATCH_RECORDS"),
        description="Most records ingest's consumers (predictions.raw, predictions) handle per poll.",
    )
    ingest_outbox_relay_after_s: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("CVLOOP_INGEST_OUTBOX_RELAY_AFTER_S"),
        description="How long an event ingest recorded waits for its own publish before the outbox relay "
        "(of any process) sends it instead (a crash between recording and publishing).",
    )
    ingest_cache_s: float = Field(
        2.0,
        ge=0,
        validation_alias=_env("CVLOOP_INGEST_CACHE_S"),
        description="How long the monitor endpoint trusts an API key and a deployment's settings it read: "
        "a revoked key or a new threshold reaches ingest within this long (0: read on every request).",
    )
    ingest_db_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        validation_alias=_env("CVLOOP_INGEST_DB_POOL_SIZE"),
        description="Postgres connections of ingest.",
    )

    # --- api, SDK and CLI (services/api, cvloop) ---
    api_max_upload_bytes: int = Field(
        1024 * 1024 * 1024,
        gt=0,
        validation_alias=_env("CVLOOP_API_MAX_UPLOAD_BYTES"),
        description="Largest model file POST /v1/uploads accepts (images: CVLOOP_MAX_IMAGE_BYTES); "
        "a larger one answers 413.",
    )
    api_outbox_retry_s: float = Field(
        5.0,
        gt=0.0,
        validation_alias=_env("CVLOOP_API_OUTBOX_RETRY_S"),
        description="How often the api's outbox relay sends the events that are due besides those a "
        "commit wakes it for (a failed publish, rows another process left behind).",
    )
    api_db_pool_size: int = Field(
        20,
        ge=1,
        le=200,
        validation_alias=_env("CVLOOP_API_DB_POOL_SIZE"),
        description="Postgres connections of the api.",
    )
    api_image_url_ttl_s: int = Field(
        3600,
        gt=0,
        le=7 * 24 * 3600,
        validation_alias=_env("CVLOOP_API_IMAGE_URL_TTL_S"),
        description="How long a predicted asset's presigned image_url stays valid.",
    )

    # SDK and CLI: where the client finds the services, and its key.
    api_url_setting: str | None = Field(
        None,
        validation_alias=_env("CVLOOP_API_URL"),
        description="Control plane's base URL the SDK and CLI call. Unset: the local api on <port base>+7.",
    )
    ingest_url_setting: str | None = Field(
        None,
        validation_alias=_env("CVLOOP_INGEST_URL"),
        description="Monitor endpoint's base URL the SDK calls. Unset: the local ingest on <port base>+6.",
    )
    serving_url_setting: str | None = Field(
        None,
        validation_alias=_env("CVLOOP_SERVING_URL"),
        description="Serving's base URL the SDK calls. Unset: the local serving on <port base>+5.",
    )
    api_key: str | None = Field(
        None,
        validation_alias=_env("CVLOOP_API_KEY"),
        description="API key the SDK and CLI send (`cvloop projects create` prints a project's first one).",
    )

    @property
    def api_url(self) -> str:
        return self.api_url_setting or f"http://{LOCAL_HOST}:{self.api_port}"

    @property
    def ingest_url(self) -> str:
        return self.ingest_url_setting or f"http://{LOCAL_HOST}:{self.ingest_port}"

    @property
    def serving_url(self) -> str:
        return self.serving_url_setting or f"http://{LOCAL_HOST}:{self.serving_port}"

    # --- scoring (services/scoring) ---
    scoring_batch_size: int = Field(
        1000,
        gt=0,
        validation_alias=_env("SCORING_BATCH_SIZE"),
        description="Most predictions the scoring stream takes in one batch.",
    )
    scoring_batch_wait_s: float = Field(
        0.2,
        gt=0,
        validation_alias=_env("SCORING_BATCH_WAIT_S"),
        description="Longest the scoring stream waits to fill a batch before scoring what it has.",
    )
    scoring_reference_sample_size: int = Field(
        10_000,
        gt=0,
        validation_alias=_env("SCORING_REFERENCE_SAMPLE_SIZE"),
        description="Training images a reference keeps for the drift tests (the outlier model sees all).",
    )
    scoring_reference_refresh_s: float = Field(
        5.0,
        gt=0,
        validation_alias=_env("SCORING_REFERENCE_REFRESH_S"),
        description="How long the scoring stream trusts what it knows of a deployment's reference before "
        "asking Postgres again.",
    )
    scoring_drift_window: int = Field(
        1000,
        gt=1,
        validation_alias=_env("SCORING_DRIFT_WINDOW"),
        description="Predictions in a deployment's sliding drift window.",
    )
    scoring_drift_min_window: int = Field(
        100,
        gt=0,
        validation_alias=_env("SCORING_DRIFT_MIN_WINDOW"),
        description="Fewest predictions a drift report is computed on.",
    )
    scoring_drift_every: int = Field(
        1000,
        gt=0,
        validation_alias=_env("SCORING_DRIFT_EVERY"),
        description="A drift report is due every this many predictions of a deployment...",
    )
    scoring_drift_interval_s: float = Field(
        60.0,
        gt=0,
        validation_alias=_env("SCORING_DRIFT_INTERVAL_S"),
        description="...or this many seconds after the last one, when new predictions came meanwhile.",
    )
    scoring_drift_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        validation_alias=_env("SCORING_DRIFT_ALPHA"),
        description="Significance level of the drift decision, after the correction.",
    )
    scoring_drift_correction: MultipleTestingCorrection = Field(
        MultipleTestingCorrection.BENJAMINI_HOCHBERG,
        validation_alias=_env("SCORING_DRIFT_CORRECTION"),
        description="Multiple-testing correction over the features: `benjamini-hochberg` or `bonferroni`.",
    )
    scoring_quality_window: int = Field(
        500,
        gt=0,
        validation_alias=_env("SCORING_QUALITY_WINDOW"),
        description="Most recent reviewed predictions the champion and shadow quality is measured on.",
    )
    scoring_latency_window: int = Field(
        1000,
        gt=0,
        validation_alias=_env("SCORING_LATENCY_WINDOW"),
        description="Most recent predictions the latency percentiles by role are taken over.",
    )

    # --- pipeline (services/pipeline) ---
    pipeline_outbox_retry_s: float = Field(
        5.0,
        gt=0.0,
        validation_alias=_env("PIPELINE_OUTBOX_RETRY_S"),
        description="How often the pipeline's outbox relay sends the events that are due besides those "
        "a change wakes it for (JobRequested and DeploymentUpdated after a failed publish, say).",
    )

    # --- job runner (services/pipeline/runner) ---
    jobs_backend: Literal["local", "kubernetes"] = Field(
        "local",
        validation_alias=_env("JOBS_BACKEND"),
        description="Where jobs run: `local` (subprocesses of the runner, each in a folder under "
        "JOBS_WORK_DIR) or `kubernetes` (a batch/v1 Job each, from JOBS_KUBERNETES_TEMPLATE).",
    )
    jobs_work_dir_setting: Path | None = Field(
        None,
        validation_alias=_env("JOBS_WORK_DIR"),
        description="Folder holding the local backend's job workspaces, one per run. "
        "Unset: <state dir>/jobs.",
    )
    jobs_max_concurrent: int = Field(
        2,
        ge=1,
        le=1000,
        validation_alias=_env("JOBS_MAX_CONCURRENT"),
        description="Runs one runner has going at once; more pending runs wait their turn.",
    )
    jobs_timeout_s: float = Field(
        3600.0,
        gt=0,
        validation_alias=_env("JOBS_TIMEOUT_S"),
        description="Longest a run may take before it is stopped and failed; a job's `timeout_s` parameter "
        "overrides it.",
    )
    jobs_poll_s: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("JOBS_POLL_S"),
        description="How often the runner looks for pending runs besides the JobRequested wake-ups.",
    )
    jobs_keep_workspaces: bool = Field(
        False,
        validation_alias=_env("JOBS_KEEP_WORKSPACES"),
        description="Keep a local run's folder after it finished (to look at what a job wrote).",
    )
    jobs_kubernetes_namespace: str = Field(
        "cvloop",
        validation_alias=_env("JOBS_KUBERNETES_NAMESPACE"),
        description="Namespace the runner creates its Kubernetes Jobs in.",
    )
    jobs_kubernetes_api: str | None = Field(
        None,
        validation_alias=_env("JOBS_KUBERNETES_API"),
        description="Kubernetes API server URL. Unset: the in-cluster one (KUBERNETES_SERVICE_HOST), with "
        "the pod's service-account token and CA.",
    )
    jobs_image: str = Field(
        "cvloop:latest",
        validation_alias=_env("JOBS_IMAGE"),
        description="Image of a Kubernetes Job's workspace steps and of jobs run as commands (the cvloop "
        "image); a processing registered with an image runs that image.",
    )
    jobs_kubernetes_template: Path = Field(
        Path("deploy/k8s/jobs/job.yaml"),
        validation_alias=_env("JOBS_KUBERNETES_TEMPLATE"),
        description="The batch/v1 Job template the kubernetes backend fills in for each run.",
    )

    @property
    def jobs_work_dir(self) -> Path:
        return (self.jobs_work_dir_setting or self.state_path / "jobs").resolve()

    @property
    def state_path(self) -> Path:
        return self.state_dir.resolve()

    @property
    def tools_path(self) -> Path:
        return (self.tools_dir_setting or self.state_path / "tools").resolve()

    @property
    def database_url(self) -> str:
        return self.database_url_setting or (
            f"postgresql://{LOCAL_DATABASE_USER}@{LOCAL_HOST}:{self.postgres_port}/{LOCAL_DATABASE}"
        )

    @property
    def postgres_port(self) -> int:
        return self.port_base

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
    def s3_port(self) -> int:
        return self.port_base + 1

    @property
    def s3_endpoint(self) -> str:
        return self.s3_endpoint_setting or f"http://{LOCAL_HOST}:{self.s3_port}"

    @property
    def triton_http_port(self) -> int:
        return self.port_base + 2

    @property
    def triton_grpc_port(self) -> int:
        return self.port_base + 3

    @property
    def triton_metrics_port(self) -> int:
        return self.port_base + 4

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
        return self.port_base + 5

    @property
    def ingest_port(self) -> int:
        return self.port_base + 6

    @property
    def api_port(self) -> int:
        return self.port_base + 7

    @property
    def scoring_port(self) -> int:
        return self.port_base + 8

    @property
    def pipeline_port(self) -> int:
        return self.port_base + 9

    @property
    def job_runner_port(self) -> int:
        return self.port_base + 10

    def is_external(self, component: str) -> bool:
        """True when the component's URL setting points at a server `cvloop up` must not start."""
        field = {
            "postgres": "database_url_setting",
            "kafka": "kafka_bootstrap_setting",
            "s3": "s3_endpoint_setting",
            "triton": "triton_url_setting",
        }[component]
        return getattr(self, field) is not None


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load the same settings (the local stack's services)."""
    env = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is not None:
            text = str(value.resolve()) if isinstance(value, Path) else str(value)
            env[field.validation_alias.choices[0]] = text
    return env


def load_settings() -> Settings:
    return Settings()
