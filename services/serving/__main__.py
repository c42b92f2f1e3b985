"""`python -m services.serving`: the serving gateway."""

from services.common.service_main import run_service

from .app import build_app
from .settings import ServingSettings


def main() -> None:
    run_service(ServingSettings(), build_app, lambda settings: settings.serving_port)


if __name__ == "__main__":
    main()
