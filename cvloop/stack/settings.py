"""The local stack's settings: every service's, in one model, so `cvloop up` (and a test or bench that
changes one) hands each service process the values its own settings model reads."""

from __future__ import annotations

from cvloop.sdk.settings import SdkSettings
from services.api.settings import ApiSettings
from services.common.settings import Settings
from services.ingest.settings import IngestSettings
from services.pipeline.settings import PipelineSettings
from services.scoring.settings import ScoringSettings
from services.serving.settings import ServingSettings

SERVICE_SETTINGS: dict[str, type[Settings]] = {
    "serving": ServingSettings,
    "ingest": IngestSettings,
    "api": ApiSettings,
    "scoring": ScoringSettings,
    "pipeline": PipelineSettings,  # and the job runner
}


class StackSettings(ServingSettings, IngestSettings, ApiSettings, ScoringSettings, PipelineSettings):
    """The shared settings and each service's own."""


def sdk_settings(settings: Settings) -> SdkSettings:
    """The SDK's settings that reach the local stack `settings` runs (its URLs unset: the stack's ports)."""
    return SdkSettings(port_base=settings.port_base)
