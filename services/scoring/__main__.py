"""`python -m services.scoring`: the scoring stream."""

from services.common.service_main import health_app, run_service, stop_this_process

from .service import ScoringService
from .settings import ScoringSettings


def main() -> None:
    run_service(
        ScoringSettings(),
        health_app("cvloop scoring", lambda settings: ScoringService(settings, on_failure=stop_this_process)),
        lambda settings: settings.scoring_port,
    )


if __name__ == "__main__":
    main()
