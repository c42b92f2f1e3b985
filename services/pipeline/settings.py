"""The pipeline stream's and the job runner's settings: the shared ones and their own."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from schemas.job_workspace import TORCH_TRAINER_IMAGE
from services.common.settings import Settings, from_env


class PipelineSettings(Settings):
    pipeline_outbox_retry_s: float = Field(
        5.0,
        gt=0.0,
        validation_alias=from_env("PIPELINE_OUTBOX_RETRY_S"),
        description="How often the pipeline's outbox relay sends the events that are due besides those "
        "a change wakes it for (JobRequested and DeploymentUpdated after a failed publish, say).",
    )

    # --- promotion gate (continuous-deployment policy shadow_then_promote) ---
    pipeline_gate_min_pairs: int = Field(
        100,
        ge=1,
        le=100_000,
        validation_alias=from_env("PIPELINE_GATE_MIN_PAIRS"),
        description="Reviewed predictions both the champion and the shadow answered before the gate decides "
        "to promote or to roll back.",
    )
    pipeline_gate_level: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        validation_alias=from_env("PIPELINE_GATE_LEVEL"),
        description="Significance level of the gate's one-sided test (McNemar's exact test for accuracy, a "
        "paired bootstrap over images for box or mask AP): a shadow is promoted, or a promotion rolled back, "
        "only at p <= this.",
    )
    pipeline_gate_latency_p95_ms: float = Field(
        500.0,
        gt=0.0,
        validation_alias=from_env("PIPELINE_GATE_LATENCY_P95_MS"),
        description="Latency budget: a better shadow whose p95 latency over the comparison window is above "
        "it stays shadow.",
    )
    pipeline_gate_watch_reviews: int = Field(
        200,
        ge=1,
        le=100_000,
        validation_alias=from_env("PIPELINE_GATE_WATCH_REVIEWS"),
        description="After a promotion the previous champion stays shadow for this many paired reviews; if "
        "it proves better on them the promotion is rolled back, else it is removed.",
    )
    pipeline_gate_window: int = Field(
        2000,
        ge=1,
        le=100_000,
        validation_alias=from_env("PIPELINE_GATE_WINDOW"),
        description="Latest paired reviewed predictions (and latest shadow latencies) the gate looks at.",
    )
    pipeline_gate_bootstrap_resamples: int = Field(
        500,
        ge=10,
        le=100_000,
        validation_alias=from_env("PIPELINE_GATE_BOOTSTRAP_RESAMPLES"),
        description="Resamples of the detection and segmentation gate's paired bootstrap (seeded: a replay "
        "decides the same).",
    )
    pipeline_settings_cache_s: float = Field(
        5.0,
        ge=0.0,
        validation_alias=from_env("PIPELINE_SETTINGS_CACHE_S"),
        description="How long the pipeline reuses a deployment's continuous-training settings for the "
        "drift reports and outlier scores it reads: one Postgres read per deployment and period instead "
        "of one per scored prediction. Submissions always read them afresh. 0: every event reads them.",
    )

    # --- job runner (services/pipeline/runner) ---
    jobs_backend: Literal["local", "kubernetes"] = Field(
        "local",
        validation_alias=from_env("JOBS_BACKEND"),
        description="Where jobs run: `local` (subprocesses of the runner, each in a folder under "
        "JOBS_WORK_DIR) or `kubernetes` (a batch/v1 Job each, from JOBS_KUBERNETES_TEMPLATE).",
    )
    jobs_work_dir_setting: Path | None = Field(
        None,
        validation_alias=from_env("JOBS_WORK_DIR"),
        description="Folder holding the local backend's job workspaces, one per run. "
        "Unset: <state dir>/jobs.",
    )
    jobs_max_concurrent: int = Field(
        2,
        ge=1,
        le=1000,
        validation_alias=from_env("JOBS_MAX_CONCURRENT"),
        description="Runs one runner has going at once; more pending runs wait their turn.",
    )
    jobs_timeout_s: float = Field(
        3600.0,
        gt=0,
        validation_alias=from_env("JOBS_TIMEOUT_S"),
        description="Longest a run may take before it is stopped and failed; a job's `timeout_s` parameter "
        "overrides it.",
    )
    jobs_poll_s: float = Field(
        10.0,
        gt=0,
        validation_alias=from_env("JOBS_POLL_S"),
        description="How often the runner looks for pending runs besides the JobRequested wake-ups.",
    )
    jobs_keep_workspaces: bool = Field(
        False,
        validation_alias=from_env("JOBS_KEEP_WORKSPACES"),
        description="Keep a local run's folder after it finished (to look at what a job wrote).",
    )
    jobs_local_user: str = Field(
        "cvloop-job",
        min_length=1,
        validation_alias=from_env("JOBS_LOCAL_USER"),
        description="OS user the local backend runs jobs as when the runner runs as root (created when "
        "missing, with no network of its own); a runner that is not root runs them as itself.",
    )
    jobs_local_pythons_setting: dict[str, Path] | None = Field(
        None,
        validation_alias=from_env("JOBS_LOCAL_PYTHONS"),
        description="A JSON object: job image name (no registry, path or tag) -> the Python that stands in "
        "for that image on the local backend, which runs no images: a job with that image and a `python` "
        "command runs that Python, e.g. "
        '`{"my-trainer": "/opt/my-env/bin/python"}`. Unset: `cvloop-trainer-torch` (the torch job image) -> '
        "<tools dir>/torch-env/bin/python (scripts/install_torch.sh).",
    )
    jobs_kubernetes_namespace: str = Field(
        "cvloop",
        validation_alias=from_env("JOBS_KUBERNETES_NAMESPACE"),
        description="Namespace the runner creates its Kubernetes Jobs in.",
    )
    jobs_kubernetes_api: str | None = Field(
        None,
        validation_alias=from_env("JOBS_KUBERNETES_API"),
        description="Kubernetes API server URL, used without credentials (`kubectl proxy`, say). Unset: the "
        "in-cluster one (KUBERNETES_SERVICE_HOST), with the pod's service-account token (read again as it "
        "rotates) and CA.",
    )
    jobs_image: str = Field(
        "cvloop:latest",
        validation_alias=from_env("JOBS_IMAGE"),
        description="Image of a Kubernetes Job's workspace steps and of jobs run as commands (the cvloop "
        "image); a processing registered with an image runs that image.",
    )
    jobs_kubernetes_template: Path = Field(
        Path("deploy/k8s/jobs/job.yaml"),
        validation_alias=from_env("JOBS_KUBERNETES_TEMPLATE"),
        description="The batch/v1 Job template the kubernetes backend fills in for each run.",
    )

    @property
    def jobs_work_dir(self) -> Path:
        return (self.jobs_work_dir_setting or self.state_path / "jobs").resolve()

    @property
    def jobs_local_pythons(self) -> dict[str, Path]:
        if self.jobs_local_pythons_setting is not None:
            return self.jobs_local_pythons_setting
        return {TORCH_TRAINER_IMAGE: self.tools_path / "torch-env" / "bin" / "python"}
