"""``pylock.toml`` (PEP 751): every locked package's pin, with its marker."""

from __future__ import annotations

from pathlib import Path

from venvlayers.lock.importers._common import fail, pin, read_toml


def read(path: Path) -> list[str]:
    packages = read_toml(path).get("packages", [])
    if not isinstance(packages, list):
        fail(path, "'packages' must be an array of tables")
    pins = []
    for package in packages:
        name = package.get("name") if isinstance(package, dict) else None
        version = package.get("version") if isinstance(package, dict) else None
        if not isinstance(name, str):
            fail(path, "a [[packages]] entry has no name")
        if not isinstance(version, str):
            fail(path, f"{name}: no version (directory and VCS packages cannot be locked)")
        marker = package.get("marker")
        pins.append(pin(name, version, marker if isinstance(marker, str) else None))
    return pins
