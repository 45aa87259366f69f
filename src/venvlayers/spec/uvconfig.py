"""Baseline uv settings: the spec's ``[tool.uv]`` table, else ``venvstacks.uv.toml`` beside it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvlayers.errors import SpecError
from venvlayers.spec.fields import Fields
from venvlayers.spec.model import PackageIndex

UV_CONFIG_FILENAME = "venvstacks.uv.toml"


@dataclass(frozen=True)
class UvConfig:
    settings: dict[str, Any] = field(default_factory=dict)
    # The file the settings came from (the spec itself for [tool.uv]); None: no settings.
    path: Path | None = None
    indexes: dict[str, PackageIndex] = field(default_factory=dict)


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or a one-line :class:`SpecError` naming it."""
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a stack specification") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None


def load_uv_config(spec_path: Path, tool: Any) -> UvConfig:
    """The baseline settings for a spec whose top-level ``tool`` value is ``tool``.

    Unlike uv's own ``uv.toml`` / ``pyproject.toml`` precedence, the table inside the
    spec wins and the sidecar file is then not read at all.
    """
    if tool is not None and not isinstance(tool, dict):
        raise SpecError(f"{spec_path.name}: 'tool': must be a table")
    uv = (tool or {}).get("uv")
    if uv is not None:
        if not isinstance(uv, dict):
            raise SpecError(f"{spec_path.name}: 'tool.uv': must be a table")
        settings, path, where, table = uv, spec_path, "[tool.uv]", "[[tool.uv.index]]"
    else:
        sidecar = spec_path.with_name(UV_CONFIG_FILENAME)
        if not sidecar.is_file():
            return UvConfig()
        settings, path, where, table = read_toml(sidecar), sidecar, UV_CONFIG_FILENAME, "[[index]]"
    return UvConfig(settings, path, _named_indexes(settings, where, table))


def _named_indexes(settings: dict[str, Any], where: str, table: str) -> dict[str, PackageIndex]:
    raw_indexes = settings.get("index", [])
    if not isinstance(raw_indexes, list) or not all(isinstance(i, dict) for i in raw_indexes):
        raise SpecError(f"{where}: 'index': must be an array of tables ({table})")
    indexes: dict[str, PackageIndex] = {}
    for position, raw in enumerate(raw_indexes):
        name, url = raw.get("name"), raw.get("url")
        if not isinstance(url, str):
            raise SpecError(f"{where}: index #{position + 1}: 'url': missing or not a string")
        if name is None:
            continue  # an unnamed index cannot be referred to by layers; uv still uses it
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}: index #{position + 1}: 'name': must be a string")
        if name in indexes:
            raise SpecError(f"{where}: index {name!r}: duplicate index name")
        flags = Fields(f"{where}: index {name!r}", raw)
        indexes[name] = PackageIndex(
            name=name,
            url=url,
            explicit=flags.boolean("explicit"),
            default=flags.boolean("default"),
        )
    return indexes
