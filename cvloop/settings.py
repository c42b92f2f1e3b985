"""Every settings model cvloop reads the environment through, by who reads it: the variables
docs/settings.md lists and the Kubernetes package may set."""

from __future__ import annotations

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from services.common.settings import Settings, env_name

from .sdk.settings import SdkSettings
from .stack.settings import SERVICE_SETTINGS


def settings_models() -> dict[str, type[BaseSettings]]:
    """The shared base, each service's own model, the SDK's."""
    return {"shared": Settings, **SERVICE_SETTINGS, "sdk": SdkSettings}


def own_fields(model: type[BaseSettings]) -> dict[str, FieldInfo]:
    """The fields a model declares itself: a service's model without the shared ones it inherits."""
    inherited = Settings.model_fields if model is not Settings and issubclass(model, Settings) else {}
    return {name: field for name, field in model.model_fields.items() if name not in inherited}


def every_env_name() -> set[str]:
    return {env_name(field) for model in settings_models().values() for field in model.model_fields.values()}
