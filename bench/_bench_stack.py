"""A copy of the example stack that both tools resolve to the very same packages and runtime.

The pins come from venvlayers' lock summaries (``requirements/*/packages-*.txt``). Each layer's
requirements become its original requirements pinned to the locked versions, plus every
package that layer locked for itself, and the runtime's ``python_implementation`` becomes the
exact local version. venvstacks then has nothing left to choose differently.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEC_NAME = "venvstacks.toml"
LAYER_KINDS = ("runtimes", "frameworks", "applications")
# Tool outputs that a copy of the example must not inherit from the source folder.
_NOT_COPIED = ("_build", "_artifacts", "requirements", "__pycache__")
_INHERITED_HEADER = "# Inherited from lower layers"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class LayerPins:
    """What venvlayers locked for one layer (by build name)."""

    own: tuple[str, ...]  # full lines, markers kept: ``colorama==0.4.6 ; sys_platform == ...``
    versions: Mapping[str, str]  # normalized name -> version, own and inherited


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_name(kind: str, name: str) -> str:
    return {"runtimes": name, "frameworks": f"framework-{name}", "applications": f"app-{name}"}[
        kind
    ]


def copy_stack(source: Path, dest: Path) -> Path:
    """Copy the stack folder ``source`` to the new folder ``dest``; the copy's spec path."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    return dest / SPEC_NAME


def read_pins(requirements_dir: Path) -> dict[str, LayerPins]:
    """Parse every ``<build name>/packages-<build name>.txt`` under ``requirements_dir``."""
    pins: dict[str, LayerPins] = {}
    for summary in sorted(requirements_dir.glob("*/packages-*.txt")):
        layer = summary.parent.name
        own: list[str] = []
        versions: dict[str, str] = {}
        inherited = False
        for raw in summary.read_text(encoding="utf-8").splitlines():
            if raw.startswith(_INHERITED_HEADER):
                inherited = True
            line = raw.split("  #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            requirement = line.split(";", 1)[0].strip()
            name, sep, version = requirement.partition("==")
            if not sep:
                raise SystemExit(f"{summary}: cannot read the pin {raw!r}")
            versions[normalize(name)] = version.strip()
            if not inherited:
                own.append(line)
        pins[layer] = LayerPins(tuple(own), versions)
    if not pins:
        raise SystemExit(f"{requirements_dir}: no packages-*.txt lock summaries found")
    return pins


def _name_and_extras(requirement: str) -> tuple[str, str]:
    match = _NAME.match(requirement)
    if match is None:
        raise SystemExit(f"cannot read the requirement {requirement!r}")
    return match.group(1), match.group(2) or ""


def _pin_requirement(requirement: str, versions: Mapping[str, str]) -> str:
    name, extras = _name_and_extras(requirement)
    version = versions.get(normalize(name))
    if version is None:
        raise SystemExit(f"{requirement!r}: no locked version for {name}")
    _, sep, marker = requirement.partition(";")
    return f"{name}{extras}=={version}" + (f" ;{marker}" if sep else "")


def pinned_layer(layer: dict[str, Any], kind: str, pins: Mapping[str, LayerPins]) -> list[str]:
    """The layer's requirements with every version fixed to what venvlayers locked."""
    locked = pins.get(build_name(kind, layer["name"]))
    if locked is None:
        raise SystemExit(f"{layer['name']}: no lock summary for {build_name(kind, layer['name'])}")
    pinned = {normalize(_name_and_extras(line)[0]): line for line in locked.own}
    for requirement in layer.get("requirements", []):
        line = _pin_requirement(requirement, locked.versions)
        pinned.setdefault(normalize(_name_and_extras(line)[0]), line)
    return sorted(pinned.values(), key=str.lower)


def write_pinned_spec(
    source_spec: Path, dest_spec: Path, pins: Mapping[str, LayerPins], runtime_version: str
) -> None:
    """Write ``dest_spec`` from ``source_spec``: pinned requirements, exact runtime version."""
    spec = tomllib.loads(source_spec.read_text(encoding="utf-8"))
    for kind in LAYER_KINDS:
        for layer in spec.get(kind, []):
            layer["requirements"] = pinned_layer(layer, kind, pins)
            if kind == "runtimes":
                implementation = layer["python_implementation"].partition("@")[0]
                layer["python_implementation"] = f"{implementation}@{runtime_version}"
    header = f"# Generated from {source_spec.name} by bench/compare_venvstacks.py: pinned copy.\n"
    dest_spec.write_text(header + dumps_toml(spec), encoding="utf-8")


def runtime_request(spec_path: Path) -> str:
    """The ``python_implementation`` of the stack's only runtime layer."""
    runtimes = tomllib.loads(spec_path.read_text(encoding="utf-8")).get("runtimes", [])
    if len(runtimes) != 1:
        raise SystemExit(f"{spec_path}: the benchmark expects exactly one runtime layer")
    return str(runtimes[0]["python_implementation"])


# A TOML writer for what stack specs hold: tables, arrays of tables, strings, numbers,
# booleans and lists. JSON string escapes are valid TOML basic-string escapes.
def dumps_toml(document: Mapping[str, Any]) -> str:
    return "\n".join(_table_lines(document, ())) + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise SystemExit(f"cannot write {value!r} to TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table_lines(table: Mapping[str, Any], path: tuple[str, ...]) -> list[str]:
    lines = [
        f"{_key(k)} = {_value(v)}"
        for k, v in table.items()
        if not isinstance(v, dict) and not _is_table_array(v)
    ]
    for key, value in table.items():
        dotted = ".".join(_key(part) for part in (*path, key))
        if isinstance(value, dict):
            lines += ["", f"[{dotted}]", *_table_lines(value, (*path, key))]
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{dotted}]]", *_table_lines(item, (*path, key))]
    return lines
