"""`python -m services.pipeline`: the pipeline stream."""

from services.common.service_main import health_app, run_service, stop_this_process

from .service import PipelineService
from .settings import PipelineSettings


def main() -> None:
    run_service(
        PipelineSettings(),
        health_app(
            "cvloop pipeline", lambda settings: PipelineService(settings, on_failure=stop_this_process)
        ),
        lambda settings: settings.pipeline_port,
    )


if __name__ == "__main__":
    main()
