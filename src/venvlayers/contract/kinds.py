"""The three kinds of layer, as the stack metadata and the spec both name them."""

from __future__ import annotations

import enum


class LayerKind(enum.StrEnum):
    RUNTIME = "runtime"
    FRAMEWORK = "framework"
    APPLICATION = "application"

    @property
    def table(self) -> str:
        """The name of this kind's list in the spec and in ``venvstacks.json``."""
        return {"runtime": "runtimes", "framework": "frameworks", "application": "applications"}[
            self.value
        ]

    @property
    def build_prefix(self) -> str:
        return {"runtime": "", "framework": "framework-", "application": "app-"}[self.value]
