"""`python -m services.ingest`: the ingest service."""

from services.common.service_main import run_service

from .app import build_app


def main() -> None:
    run_service(build_app, lambda settings: settings.ingest_port)


if __name__ == "__main__":
    main()
