"""``poetry.lock``: the pins of the main (non-development) packages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from venvlayers.lock.importers._common import fail, pin, read_toml

_INSTALLABLE_SOURCES = (None, "legacy")


def read(path: Path) -> list[str]:
    packages = read_toml(path).get("package", [])
    if not isinstance(packages, list):
        fail(path, "'package' must be an array of tables")
    pins = []
    for package in packages:
        if not _is_main(package):
            continue
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            fail(path, "a [[package]] entry lacks a name or version")
        source = package.get("source", {}).get("type")
        if source not in _INSTALLABLE_SOURCES:
            fail(path, f"{name}: {source} sources cannot be locked from an index (use a wheel)")
        pins.append(pin(name, version, _main_markers(package.get("markers"))))
    return pins


def _main_markers(markers: Any) -> str | None:
    """Poetry 2 gives one marker string, or a table of them by group."""
    if isinstance(markers, dict):
        markers = markers.get("main")
    return markers if isinstance(markers, str) else None


def _is_main(package: Any) -> bool:
    """Poetry 2 lists ``groups``; Poetry 1.0-1.4 gave a ``category``; files in between
    record neither, and then every package counts."""
    if not isinstance(package, dict) or package.get("optional", False):
        return False
    if "groups" in package:
        return "main" in list(package["groups"])
    return bool(package.get("category", "main") == "main")
