"""`python -m services.ingest`: the ingest service."""

from services.common.service_main import run_service

from .app import build_app
from .settings import IngestSettings


def main() -> None:
    run_service(IngestSettings(), build_app, lambda settings: settings.ingest_port)


if __name__ == "__main__":
    main()
