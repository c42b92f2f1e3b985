"""`python -m services.serving`: the serving gateway on its local-stack port (or CVLOOP_HTTP_PORT)."""

from services.common.http import serve
from services.common.logs import configure_logging

from .app import build_app
from .settings import ServingSettings


def main() -> None:
    settings = ServingSettings()
    configure_logging(settings.log_level)
    serve(build_app(settings), settings, settings.serving_port)


if __name__ == "__main__":
    main()
