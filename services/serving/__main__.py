"""`python -m services.serving`: the serving gateway on its local-stack port (or CVLOOP_HTTP_PORT)."""

from services.common.http import serve
from services.common.logs import configure_logging
from services.common.settings import load_settings

from .app import build_app


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    serve(build_app(settings), settings, settings.serving_port)


if __name__ == "__main__":
    main()
