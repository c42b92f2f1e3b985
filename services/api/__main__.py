"""`python -m services.api`: the control plane on its port until SIGTERM."""

from __future__ import annotations

from services.common.http import serve
from services.common.logs import configure_logging

from .app import build_app
from .settings import ApiSettings


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log_level)
    serve(build_app(settings), settings, settings.api_port)


if __name__ == "__main__":
    main()
