"""Helpers the importers share: reading files, rendering pins."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, NoReturn

from venvlayers.errors import LockError


def fail(path: Path, message: str) -> NoReturn:
    raise LockError(f"{path}: {message}")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        fail(path, f"not valid TOML: {exc}")


def pin(name: str, version: str, marker: str | None = None) -> str:
    """``name==version`` plus ``; marker`` when the pin applies only somewhere."""
    text = f"{name}=={version}"
    return f"{text} ; {marker}" if marker else text
