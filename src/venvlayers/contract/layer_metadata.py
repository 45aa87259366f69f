"""The few fields of a layer's ``venvstacks_layer.json`` that deploying and running need.

Read here, defensively: the file comes from an archive, so every path is checked to stay in
place. Deploy, verify, run and local-export all read it through this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers import layout
from venvlayers.errors import DeployError


@dataclass(frozen=True)
class DeployedLayerMeta:
    """Paths relative to the layer folder (``base_python`` may climb into a sibling layer)."""

    python: str
    base_python: str
    site_dir: str
    postinstall_script: str
    launch_module: str | None
    app_python: str | None

    @classmethod
    def read(cls, layer_dir: Path, name: str) -> DeployedLayerMeta:
        path = layer_dir / layout.LAYER_METADATA
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            python = _text(data, "python")
            return cls(
                python=python,
                base_python=_text(data, "base_python", default=python),
                site_dir=_text(data, "site_dir"),
                postinstall_script=_text(
                    data, "postinstall_script", default=layout.POSTINSTALL_SCRIPT
                ),
                launch_module=_optional_text(data, "launch_module"),
                app_python=_optional_text(data, "app_python"),
            )
        except FileNotFoundError:
            raise DeployError(f"{name}: no {layout.LAYER_METADATA} in {layer_dir}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise DeployError(f"{name}: malformed {layout.LAYER_METADATA} ({exc})") from None

    @property
    def is_runtime(self) -> bool:
        return self.base_python == self.python

    @property
    def compile_dir(self) -> str:
        """What to byte-compile: a runtime's whole library, a venv's site-packages."""
        return os.path.dirname(self.site_dir) if self.is_runtime else self.site_dir


def _text(data: dict[str, Any], key: str, *, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else _text(data, key)


def resolve_inside(layer_dir: Path, relative: str, root: Path, *, what: str) -> Path:
    """``layer_dir / relative`` made absolute; refused unless it stays inside ``root``.

    Lexical (no symlinks followed): ``bin/python`` is itself a link to another layer.
    """
    if os.path.isabs(relative):
        raise DeployError(f"{what}: {relative!r} must be relative to the layer folder")
    resolved = Path(os.path.normpath(layer_dir.absolute() / relative))
    if not resolved.is_relative_to(os.path.normpath(root.absolute())):
        raise DeployError(f"{what}: {relative!r} points outside the deployment folder {root}")
    return resolved
