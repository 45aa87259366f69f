"""A layer's ``share/venv/metadata/venvstacks_layer.json``: the one reader and writer.

Paths in it are relative to the layer folder; lower layers are reached through their
install targets (``../framework-sklearn@2/lib/python3.11/site-packages``). Build writes
it; deploy, run, verify and local-export read it, defensively, since it may come from an
archive. postinstall.py carries its own stdlib copy of the field checks
(``metadata_problem``), which this reader also applies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers import layout
from venvlayers._fs import write_json
from venvlayers._injected import postinstall
from venvlayers.contract.fields import load_json
from venvlayers.errors import DeployError, MetadataError

_PY_VERSION = re.compile(r"\d+\.\d+\.\d+")


@dataclass(frozen=True, kw_only=True)
class LayerMetadata:
    """The contents of ``venvstacks_layer.json``; every path is relative to the layer folder."""

    python: str
    py_version: str
    base_python: str
    site_dir: str
    # Lower layers' site-packages in sys.path order: frameworks in C3 order, runtime last.
    pylib_dirs: tuple[str, ...] = ()
    # Lower layers' share/venv/dynlib, same order, only for layers exposing libraries.
    dynlib_dirs: tuple[str, ...] = ()
    launch_module: str | None = None
    app_python: str | None = None
    postinstall_script: str = layout.POSTINSTALL_SCRIPT
    # Extension, runtime layers only: where the runtime came from ("local", "standalone",
    # "archive"); the exact version is py_version.
    runtime_source: str | None = None

    @property
    def is_layered(self) -> bool:
        """A framework or application venv (a runtime's base python is its own python)."""
        return self.base_python != self.python

    @property
    def is_runtime(self) -> bool:
        return not self.is_layered

    @property
    def compile_dir(self) -> str:
        """What to byte-compile: a runtime's whole library, a venv's site-packages."""
        return os.path.dirname(self.site_dir) if self.is_runtime else self.site_dir

    @classmethod
    def for_runtime(
        cls, *, python: str, py_version: str, site_dir: str, runtime_source: str | None = None
    ) -> LayerMetadata:
        """A runtime layer: its base python is its own interpreter."""
        _check_py_version(py_version)
        return cls(
            python=python,
            py_version=py_version,
            base_python=python,
            site_dir=site_dir,
            runtime_source=runtime_source,
        )

    @classmethod
    def for_venv(
        cls,
        *,
        py_version: str,
        base_python: str,
        site_dir: str,
        pylib_dirs: Sequence[str] = (),
        dynlib_dirs: Sequence[str] = (),
        launch_module: str | None = None,
        app_python: str | None = None,
        windows: bool = False,
    ) -> LayerMetadata:
        """A framework, or an application when ``launch_module`` is given.

        Paths lead to lower layers by their install targets (``../<install_target>/...``).
        """
        _check_py_version(py_version)
        python = layout.venv_python(windows=windows)
        if launch_module is not None and app_python is None:
            app_python = python
        return cls(
            python=python,
            py_version=py_version,
            base_python=base_python,
            site_dir=site_dir,
            pylib_dirs=tuple(pylib_dirs),
            dynlib_dirs=tuple(dynlib_dirs),
            launch_module=launch_module,
            app_python=app_python,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object, leaving out fields that do not apply to this kind of layer."""
        data: dict[str, Any] = {
            "python": self.python,
            "py_version": self.py_version,
            "base_python": self.base_python,
            "site_dir": self.site_dir,
            "pylib_dirs": list(self.pylib_dirs),
            "dynlib_dirs": list(self.dynlib_dirs),
            "postinstall_script": self.postinstall_script,
        }
        if self.launch_module is not None:
            data["launch_module"] = self.launch_module
        if self.app_python is not None:
            data["app_python"] = self.app_python
        if self.runtime_source is not None:
            data["runtime_source"] = self.runtime_source
        return data

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, source: str = layout.LAYER_METADATA
    ) -> LayerMetadata:
        """Parse the JSON object; unknown fields are ignored, wrong ones name the field."""
        problem = postinstall.metadata_problem(dict(data))
        if problem:
            raise MetadataError(f"{source}: {problem}")
        return cls(
            python=data["python"],
            py_version=data["py_version"],
            base_python=data["base_python"],
            site_dir=data["site_dir"],
            pylib_dirs=tuple(data.get("pylib_dirs", ())),
            dynlib_dirs=tuple(data.get("dynlib_dirs", ())),
            launch_module=data.get("launch_module"),
            app_python=data.get("app_python"),
            postinstall_script=data.get("postinstall_script") or layout.POSTINSTALL_SCRIPT,
            runtime_source=data.get("runtime_source"),
        )


def write_layer_metadata(layer_dir: Path, meta: LayerMetadata) -> None:
    write_json(layer_dir / layout.LAYER_METADATA, meta.to_json())


def read_layer_metadata(layer_dir: Path, name: str | None = None) -> LayerMetadata:
    """The layer's metadata, checked; :class:`MetadataError` names the layer and field.

    The file may come from an archive: it is read as untrusted input.
    """
    name = name or layer_dir.name
    path = layer_dir / layout.LAYER_METADATA
    if not path.is_file():
        raise MetadataError(f"{name}: cannot read {layout.LAYER_METADATA}: no such file")
    data = load_json(path, origin=f"{name}: {layout.LAYER_METADATA}")
    if not isinstance(data, dict):
        raise MetadataError(f"{name}: {layout.LAYER_METADATA} must hold a JSON object")
    return LayerMetadata.from_json(data, source=f"{name}: {layout.LAYER_METADATA}")


def _check_py_version(py_version: str) -> None:
    if not _PY_VERSION.fullmatch(py_version):
        raise MetadataError(f"py_version {py_version!r} must be X.Y.Z")


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
