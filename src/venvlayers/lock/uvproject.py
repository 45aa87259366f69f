"""The throwaway uv project that locks one layer, and the uv config file beside it.

Project-level settings (dependencies, ``environments``, constraints, overrides, indexes,
sources) go into ``pyproject.toml``; every other ``[tool.uv]`` setting goes into our own
``uv.toml``, passed with ``--config-file`` while UV_NO_CONFIG keeps user config out.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from venvlayers.lock.inputs import exclude_newer
from venvlayers.lock.model import LockedPackage
from venvlayers.lock.platforms import uv_environment
from venvlayers.runtime import interpreter_for
from venvlayers.spec.model import LayerSpec, StackSpec

# [tool.uv] keys that belong to a project, not to uv's settings.
_PROJECT_KEYS = (
    "index",
    "sources",
    "constraint-dependencies",
    "override-dependencies",
    "conflicts",
)
# [tool.uv] keys venvlayers decides itself for each layer.
_OWN_KEYS = (
    "environments",
    "required-environments",
    "package",
    "managed",
    "workspace",
    "dev-dependencies",
    "default-groups",
    "no-build",
)
PROJECT_NAME = "venvlayers-layer-lock"
_DEFAULT_INDEX = "https://pypi.org/simple"


@dataclass(frozen=True)
class UvProject:
    pyproject: dict[str, Any]
    config: dict[str, Any]
    # A minimal uv.lock holding the previous pins, which uv keeps where it can.
    preferences: str | None
    # The interpreter uv runs with (``--python``), and whether it is the layer's X.Y.
    python: str = sys.executable
    python_matches: bool = False

    def write(self, folder: Path) -> None:
        (folder / "pyproject.toml").write_text(tomli_w.dumps(self.pyproject), encoding="utf-8")
        (folder / "uv.toml").write_text(tomli_w.dumps(self.config), encoding="utf-8")
        if self.preferences is not None:
            (folder / "uv.lock").write_text(self.preferences, encoding="utf-8")


def make_project(
    stack: StackSpec,
    layer: LayerSpec,
    requirements: Sequence[str],
    constraints: Sequence[str],
    *,
    preferences: Sequence[LockedPackage] = (),
    local_wheels: Path | None = None,
    no_index: bool = False,
    wheels_only: bool = True,
    platforms: Sequence[str] | None = None,
) -> UvProject:
    """The project that locks ``layer``.

    ``wheels_only=False`` lets uv read an sdist's metadata (building it if it must):
    used only to accept or diagnose packages that lack wheels for some platforms.
    ``platforms`` narrows the environments (default: the layer's platforms).
    """
    python = stack.runtime_of(layer).python_implementation
    uv_config = _absolute_paths(dict(stack.uv_config), _config_dir(stack))
    interpreter = interpreter_for(python.feature_version)
    guide = python.feature_version if interpreter is not None else _running_python()
    requires_python = f">={_lowest(python.feature_version, guide)}"
    tool_uv: dict[str, Any] = {
        "package": False,
        "environments": [
            uv_environment(p, python.implementation, python.feature_version)
            for p in (layer.platforms if platforms is None else platforms)
        ],
    }
    spec_constraints = list(uv_config.get("constraint-dependencies", []))
    if spec_constraints or constraints:
        tool_uv["constraint-dependencies"] = [*spec_constraints, *constraints]
    for key in ("override-dependencies", "conflicts"):
        if key in uv_config:
            tool_uv[key] = uv_config[key]
    indexes = _ordered_indexes(uv_config.get("index", []), layer.priority_indexes)
    if indexes:
        tool_uv["index"] = indexes
    sources = dict(uv_config.get("sources", {}))
    sources.update({dist: {"index": index} for dist, index in layer.effective_package_indexes})
    if sources:
        tool_uv["sources"] = sources
    pyproject = {
        "project": {
            "name": PROJECT_NAME,
            "version": "0",
            "requires-python": requires_python,
            "dependencies": list(requirements),
        },
        "tool": {"uv": tool_uv},
    }
    config = _settings(stack, uv_config, local_wheels, no_index, wheels_only)
    if indexes:
        # uv reads indexes only from configuration, and UV_NO_CONFIG keeps it from reading
        # the project's [tool.uv] as configuration: without this copy in uv.toml every
        # named index would be silently replaced by PyPI. The project keeps its own copy,
        # which uv needs to accept sources naming an index.
        config["index"] = indexes
    return UvProject(
        pyproject=pyproject,
        config=config,
        preferences=_preferences_lock(preferences, requires_python, exclude_newer(stack)),
        python=str(interpreter or sys.executable),
        python_matches=interpreter is not None,
    )


def _settings(
    stack: StackSpec,
    uv_config: Mapping[str, Any],
    local_wheels: Path | None,
    no_index: bool,
    wheels_only: bool,
) -> dict[str, Any]:
    config = {
        key: value
        for key, value in uv_config.items()
        if key not in _PROJECT_KEYS and key not in _OWN_KEYS
    }
    # Wheels only: uv then picks versions with a wheel for every environment, and no
    # sdist build runs code at lock time.
    config["no-build"] = wheels_only
    newer = exclude_newer(stack)
    if newer is not None:
        config["exclude-newer"] = newer
    if local_wheels is not None:
        config["find-links"] = [*config.get("find-links", []), str(local_wheels.resolve())]
    if no_index:
        config["no-index"] = True
    return config


def _preferences_lock(
    packages: Sequence[LockedPackage], requires_python: str, newer: str | None
) -> str | None:
    entries = []
    seen = set()
    for package in packages:
        key = (package.name, package.version)
        if key in seen:
            continue
        seen.add(key)
        entries.append(
            {
                "name": package.name,
                "version": package.version,
                # uv prefers a pinned version whatever the source it names.
                "source": {"registry": package.index or _DEFAULT_INDEX},
            }
        )
    if not entries:
        return None
    lock: dict[str, Any] = {"version": 1, "revision": 3, "requires-python": requires_python}
    if newer is not None:
        # uv releases before 0.13 discard a lock whose options lack the cutoff in force,
        # and with it every preference: relocking would then move to newer versions.
        lock["options"] = {"exclude-newer": newer}
    lock["package"] = entries
    return tomli_w.dumps(lock)


def _ordered_indexes(indexes: Any, priority: Sequence[str]) -> list[Any]:
    """The spec's indexes with this layer's ``priority_indexes`` moved to the front."""
    listed = list(indexes) if isinstance(indexes, list) else []
    first = [i for name in priority for i in listed if i.get("name") == name]
    return first + [i for i in listed if i not in first]


def _config_dir(stack: StackSpec) -> Path:
    return stack.uv_config_path.parent if stack.uv_config_path else stack.spec_dir


def _absolute_paths(config: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative index URLs, find-links and source paths, resolved against the spec."""
    if isinstance(config.get("index"), list):
        config["index"] = [
            {**i, "url": _absolute(i["url"], base)} if isinstance(i.get("url"), str) else i
            for i in config["index"]
        ]
    if isinstance(config.get("find-links"), list):
        config["find-links"] = [_absolute(f, base) for f in config["find-links"]]
    if isinstance(config.get("sources"), dict):
        config["sources"] = {
            dist: _absolute_source(source, base) for dist, source in config["sources"].items()
        }
    return config


def _absolute_source(source: Any, base: Path) -> Any:
    if isinstance(source, list):
        return [_absolute_source(s, base) for s in source]
    if isinstance(source, dict) and isinstance(source.get("path"), str):
        return {**source, "path": _absolute(source["path"], base)}
    return source


def _absolute(location: str, base: Path) -> str:
    if "://" in location or Path(location).is_absolute():
        return location
    return str((base / location).resolve())


def _running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _lowest(a: str, b: str) -> str:
    return min(a, b, key=lambda v: tuple(int(p) for p in v.split(".")))
