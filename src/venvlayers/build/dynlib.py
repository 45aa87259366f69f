"""Expose a layer's shared libraries to the layers above it (Linux and macOS).

Extension modules find the libraries their own wheel vendors through their RUNPATH, but an
extension in an upper layer cannot reach a library in a lower layer that way. So each layer
links the shared libraries in its site-packages from ``share/venv/dynlib/<file name>``
(relative symlinks, archive-safe), and an application whose lower layers expose libraries is
launched through ``bin/python-dynlib``: a POSIX sh launcher that puts those folders on
``LD_LIBRARY_PATH`` (``DYLD_LIBRARY_PATH`` on macOS) and runs the layer's ``bin/python``.

Which files are libraries (names only, nothing is opened):

- never an extension module: ``*.cpython-*.so``, ``*.abi3.so``, ``*.pypy*.so``;
- ``*.dylib`` and versioned sonames (``*.so.1``, ``*.so.5.0.0``) always are;
- a plain ``*.so`` is a library when its name starts with ``lib`` or it sits in a vendored
  library folder (``<dist>.libs/`` from auditwheel, ``.dylibs/`` from delocate); any other plain
  ``name.so`` is taken for an extension module importable as ``name``.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from venvlayers import layout
from venvlayers._fs import sha256_file, staged_dir
from venvlayers._injected import postinstall
from venvlayers.errors import BuildError

# The application launcher used when lower layers expose shared libraries.
DYNLIB_LAUNCHER = "bin/python-dynlib"

_EXTENSION_MODULE = re.compile(r"\.(cpython-[^.]+|abi3|pypy[^.]*)\.so$")
_VERSIONED_SONAME = re.compile(r"\.so(\.\d+)+$")
_SITE_PACKAGES = "lib/*/site-packages"


def is_shared_library(relative_path: str) -> bool:
    """Whether the file at ``relative_path`` (``/`` separators) is a library, not a module."""
    name = posixpath.basename(relative_path)
    folder = posixpath.basename(posixpath.dirname(relative_path))
    if _EXTENSION_MODULE.search(name):
        return False
    if name.endswith(".dylib") or _VERSIONED_SONAME.search(name):
        return True
    if name.endswith(".so"):
        return name.startswith("lib") or folder.endswith(".libs") or folder == ".dylibs"
    return False


def expose_dynlibs(
    layer_dir: Path, *, exclude: Sequence[str] = (), site_dir: str | None = None
) -> list[str]:
    """Link the libraries in site-packages from ``share/venv/dynlib``; return their paths.

    ``site_dir`` (relative to ``layer_dir``) defaults to every ``lib/*/site-packages``.
    ``exclude`` globs (``dynlib_exclude``) match the end of a library's path relative to the
    layer folder. One file name twice is fine when the contents are identical (wheels
    vendoring the same library, e.g. numpy.libs and scipy.libs); different contents are an
    error. Returned paths are relative to ``layer_dir``. Any earlier dynlib folder is
    replaced, and removed when nothing is exposed.
    """
    dynlib_dir = layer_dir / layout.DYNLIB_DIR
    chosen: dict[str, Path] = {}
    if sys.platform != "win32":
        folders = [layer_dir / site_dir] if site_dir else layer_dir.glob(_SITE_PACKAGES)
        libraries = (lib for folder in folders for lib in _library_files(layer_dir, folder))
        for library in sorted(libraries):
            relative = library.relative_to(layer_dir).as_posix()
            if any(PurePosixPath(relative).match(pattern) for pattern in exclude):
                continue
            first = chosen.setdefault(library.name, library)
            if first != library and not _same_content(first, library):
                raise BuildError(
                    f"{layer_dir.name}: two different shared libraries named {library.name!r}: "
                    f"{first.relative_to(layer_dir).as_posix()} and {relative}; add a glob "
                    "matching one of them to the layer's dynlib_exclude"
                )
    if not chosen:
        if dynlib_dir.is_symlink() or dynlib_dir.is_file():
            dynlib_dir.unlink()
        elif dynlib_dir.exists():
            shutil.rmtree(dynlib_dir)
        return []
    with staged_dir(dynlib_dir) as staging:
        for name, library in chosen.items():
            (staging / name).symlink_to(os.path.relpath(library, dynlib_dir))
    return [library.relative_to(layer_dir).as_posix() for library in chosen.values()]


def has_dynlibs(layer_dir: Path) -> bool:
    """Whether the layer exposes any shared library (its dynlib folder is not empty)."""
    dynlib_dir = layer_dir / layout.DYNLIB_DIR
    return dynlib_dir.is_dir() and any(dynlib_dir.iterdir())


def write_app_python(layer_dir: Path, dynlib_dirs: Sequence[str]) -> str:
    """The interpreter an application is launched with; writes the launcher when needed.

    With lower ``dynlib_dirs`` (relative to ``layer_dir``, as found from it now) this writes
    ``bin/python-dynlib`` and returns that path; otherwise it returns ``bin/python``.
    ``postinstall.py`` rewrites the launcher from the metadata's ``dynlib_dirs`` on deployment.
    """
    python = layout.venv_python()
    launcher = layer_dir / DYNLIB_LAUNCHER
    if not dynlib_dirs or sys.platform == "win32":
        launcher.unlink(missing_ok=True)
        return python
    postinstall.write_launcher(str(launcher), dynlib_dirs, posixpath.basename(python), sys.platform)
    return DYNLIB_LAUNCHER


def _library_files(layer_dir: Path, folder: Path) -> Iterator[Path]:
    """Library files under ``folder``; links only when they lead to a file inside the layer."""
    real_layer = layer_dir.resolve()
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = Path(root, name)
            if not is_shared_library(path.relative_to(layer_dir).as_posix()):
                continue
            if path.is_symlink():
                target = path.resolve()
                if not (target.is_file() and target.is_relative_to(real_layer)):
                    continue
            elif not path.is_file():
                continue
            yield path


def _same_content(first: Path, second: Path) -> bool:
    if first.resolve() == second.resolve():
        return True
    if first.stat().st_size != second.stat().st_size:
        return False
    return sha256_file(first) == sha256_file(second)
