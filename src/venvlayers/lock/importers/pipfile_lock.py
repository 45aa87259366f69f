"""``Pipfile.lock``: the pins of the ``default`` section (not ``develop``)."""

from __future__ import annotations

import json
from pathlib import Path

from venvlayers.lock.importers._common import fail, pin

_NON_INDEX_KEYS = ("git", "path", "file", "editable")


def read(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        fail(path, f"not valid JSON: {exc}")
    default = data.get("default", {}) if isinstance(data, dict) else None
    if not isinstance(default, dict):
        fail(path, "'default' must be an object of packages")
    pins = []
    for name, entry in sorted(default.items()):
        if not isinstance(entry, dict):
            fail(path, f"{name}: entry must be an object")
        if any(key in entry for key in _NON_INDEX_KEYS):
            fail(path, f"{name}: git/path/file entries cannot be locked from an index")
        version = entry.get("version", "")
        if not isinstance(version, str) or not version.startswith("=="):
            fail(path, f"{name}: no '==' version pin")
        markers = entry.get("markers")
        pins.append(pin(name, version[2:], markers if isinstance(markers, str) else None))
    return pins
