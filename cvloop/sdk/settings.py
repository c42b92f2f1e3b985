"""The SDK's own settings, from the environment: where it finds the services, and its key."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.local_stack import DEFAULT_PORT_BASE, PortBase, PortOffset, local_url


class SdkSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    api_url_setting: str | None = Field(
        None,
        validation_alias=AliasChoices("CVLOOP_API_URL"),
        description="Control plane's base URL the SDK and CLI call. Unset: the local api on <port base>+7.",
    )
    ingest_url_setting: str | None = Field(
        None,
        validation_alias=AliasChoices("CVLOOP_INGEST_URL"),
        description="Monitor endpoint's base URL the SDK calls. Unset: the local ingest on <port base>+6.",
    )
    serving_url_setting: str | None = Field(
        None,
        validation_alias=AliasChoices("CVLOOP_SERVING_URL"),
        description="Serving's base URL the SDK calls. Unset: the local serving on <port base>+5.",
    )
    api_key: str | None = Field(
        None,
        validation_alias=AliasChoices("CVLOOP_API_KEY"),
        description="API key the SDK and CLI send (`cvloop projects create` prints a project's first one).",
    )
    port_base: PortBase = Field(
        DEFAULT_PORT_BASE,
        validation_alias=AliasChoices("CVLOOP_PORT_BASE"),
        description="The local stack's first port, which the unset URLs above are counted from.",
    )

    @property
    def api_url(self) -> str:
        return self.api_url_setting or local_url(self.port_base, PortOffset.API)

    @property
    def ingest_url(self) -> str:
        return self.ingest_url_setting or local_url(self.port_base, PortOffset.INGEST)

    @property
    def serving_url(self) -> str:
        return self.serving_url_setting or local_url(self.port_base, PortOffset.SERVING)
