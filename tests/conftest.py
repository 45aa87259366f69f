"""Fixtures shared by the fast unit tests."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import pytest


class WriteSpec(Protocol):
    def __call__(
        self, text: str, *, files: Mapping[str, str] | None = None, name: str = ...
    ) -> Path: ...


@pytest.fixture
def write_spec(tmp_path: Path) -> WriteSpec:
    """Write a (dedented) stack specification into ``tmp_path`` and return its path.

    ``files`` maps paths relative to the spec's folder to their text (launch modules,
    requirement files, a ``venvstacks.uv.toml``, ...); their folders are created.
    """

    def write(
        text: str, *, files: Mapping[str, str] | None = None, name: str = "venvstacks.toml"
    ) -> Path:
        for relative, content in (files or {}).items():
            path = tmp_path / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        spec = tmp_path / name
        spec.write_text(textwrap.dedent(text), encoding="utf-8")
        return spec

    return write
