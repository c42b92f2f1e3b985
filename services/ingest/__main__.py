"""`python -m services.ingest`: the ingest service on its local-stack port (or CVLOOP_HTTP_PORT)."""

from services.common.http import serve
from services.common.logs import configure_logging

from .app import create_ingest_app
from .settings import IngestSettings

settings = IngestSettings()
configure_logging(settings.log_level)
serve(create_ingest_app(settings), settings, settings.ingest_port)
