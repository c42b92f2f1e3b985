"""Placeholder being written now; replaced by the real component in this same change."""

from __future__ import annotations

from .component import Component


class Postgres(Component):
    name = "postgres"

    @property
    def address(self) -> str:
        raise NotImplementedError

    def install(self) -> None:
        raise NotImplementedError

    def launch(self) -> None:
        raise NotImplementedError

    def probe(self) -> bool:
        raise NotImplementedError
