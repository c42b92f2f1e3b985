"""`python -m services.serving`: the serving gateway."""

from services.common.service_main import run_service

from .app import build_app


def main() -> None:
    run_service(build_app, lambda settings: settings.serving_port)


if __name__ == "__main__":
    main()
