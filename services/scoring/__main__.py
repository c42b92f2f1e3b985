"""`python -m services.scoring`: the scoring stream, with /healthz, /readyz and /metrics."""

from __future__ import annotations

from services.common.service_main import run_service, stop_this_process

from .service import ScoringService
from .settings import ScoringSettings

if __name__ == "__main__":
    run_service(
        "cvloop scoring",
        ScoringSettings(),
        lambda settings: ScoringService(settings, on_failure=stop_this_process),
        lambda settings: settings.scoring_port,
    )
