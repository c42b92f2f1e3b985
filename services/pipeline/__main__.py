"""`python -m services.pipeline`: the pipeline stream, with /healthz, /readyz and /metrics."""

from __future__ import annotations

from services.common.service_main import run_service, stop_this_process

from .service import PipelineService
from .settings import PipelineSettings

if __name__ == "__main__":
    run_service(
        "cvloop pipeline",
        PipelineSettings(),
        lambda settings: PipelineService(settings, on_failure=stop_this_process),
        lambda settings: settings.pipeline_port,
    )
