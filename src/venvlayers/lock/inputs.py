"""A layer's lock inputs and their hashes: what, when changed, makes its lock invalid.

- ``lock_input_hash``: the layer's requirements (incl. ``requirements_from`` files),
  the runtime's implementation and feature version ``X.Y`` (never ``X.Y.Z``) and the
  locks of the layers beneath.
- ``other_inputs_hash``: targets (platforms, linux_target, macosx_target), ``versioned``,
  index settings and the rest of the uv configuration.
- ``version_inputs_hash``: for applications, the launch and support modules' content.
  Only versioned layers check it: a change there bumps ``lock_version`` without relocking.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.requirements import Requirement

from venvlayers._fs import hash_json
from venvlayers.lock.importers import import_requirements
from venvlayers.spec.model import ApplicationSpec, LayerSpec, StackSpec
from venvlayers.spec.modules import module_files

# Bumped when venvlayers changes what it writes into locks: old locks then relock.
LOCK_FORMAT = 1
# The lock of a lower layer that has none yet.
NO_LOCK = "missing"


@dataclass(frozen=True)
class LayerInputs:
    requirements: tuple[str, ...]
    lock_input_hash: str
    other_inputs_hash: str
    version_inputs_hash: str


def layer_requirements(layer: LayerSpec) -> tuple[str, ...]:
    """The layer's own requirements plus those of its files, normalised, sorted, unique."""
    lines = list(layer.requirements)
    for path in layer.requirements_from:
        lines.extend(import_requirements(path))
    return tuple(sorted({str(Requirement(line)) for line in lines}))


def layer_inputs(
    stack: StackSpec, layer: LayerSpec, lower_lock_hashes: Sequence[tuple[str, str]]
) -> LayerInputs:
    """Hash the inputs of ``layer``; ``lower_lock_hashes`` is (build name, lock file hash)."""
    requirements = layer_requirements(layer)
    python = stack.runtime_of(layer).python_implementation
    lock_inputs = {
        "format": LOCK_FORMAT,
        "requirements": list(requirements),
        "python": f"{python.implementation}@{python.feature_version}",
        "lower_locks": [list(pair) for pair in lower_lock_hashes],
    }
    other_inputs = {
        "platforms": sorted(layer.platforms),
        "linux_target": layer.linux_target,
        "macosx_target": layer.macosx_target,
        "versioned": layer.versioned,
        "package_indexes": [list(pair) for pair in layer.effective_package_indexes],
        "priority_indexes": list(layer.priority_indexes),
        "uv": _plain(stack.uv_config),
        "exclude_newer": exclude_newer(stack),
    }
    return LayerInputs(
        requirements=requirements,
        lock_input_hash=hash_json(lock_inputs),
        other_inputs_hash=hash_json(other_inputs),
        version_inputs_hash=_hash_version_inputs(layer),
    )


def exclude_newer(stack: StackSpec) -> str | None:
    """uv's ``exclude-newer`` for this stack (``[tool.uv]`` first, else the environment's)."""
    value = stack.exclude_newer
    return None if value is None else _plain(value)


def exclude_newer_time(value: str | None) -> str | None:
    """``exclude-newer`` as an ISO UTC time, or None when it is not a date or time."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return format_time(moment)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def _hash_version_inputs(layer: LayerSpec) -> str:
    digest = hashlib.sha256()
    if isinstance(layer, ApplicationSpec):
        for module in (layer.launch_module, *layer.support_modules):
            for path in module_files(module):
                relative = path.relative_to(module.parent).as_posix()
                digest.update(relative.encode("utf-8") + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def _plain(value: Any) -> Any:
    """TOML values as JSON values (dates and times as ISO text), for hashing."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value
