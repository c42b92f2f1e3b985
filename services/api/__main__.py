"""`python -m services.api`: the control plane."""

from services.common.service_main import run_service

from .app import build_app
from .settings import ApiSettings


def main() -> None:
    run_service(ApiSettings(), build_app, lambda settings: settings.api_port)


if __name__ == "__main__":
    main()
