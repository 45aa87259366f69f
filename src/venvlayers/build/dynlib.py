"""Expose a layer's shared libraries to the layers above it (Linux and macOS).

Extension modules find the libraries their own wheel vendors through their RUNPATH, but an
extension in an upper layer cannot reach a library in a lower layer that way. So each layer
links the shared libraries in its site-packages from ``share/venv/dynlib/<name>``
(relative symlinks, archive-safe), and an application whose lower layers expose libraries is
launched through ``bin/python-dynlib``: a POSIX sh launcher that puts those folders on
``LD_LIBRARY_PATH`` (``DYLD_LIBRARY_PATH`` on macOS) and runs the layer's ``bin/python``.

Which files are libraries (by name):

- never an extension module: ``*.cpython-*.so``, ``*.abi3.so``, ``*.pypy*.so``;
- ``*.dylib`` and versioned sonames (``*.so.1``, ``*.so.5.0.0``) always are;
- a plain ``*.so`` is a library when its name starts with ``lib`` or it sits in a vendored
  library folder (``<dist>.libs/`` from auditwheel, ``.dylibs/`` from delocate); any other plain
  ``name.so`` is taken for an extension module importable as ``name``.

Which name a library is linked under, and what a name shared by two different libraries
means, is decided from the ELF files themselves on Linux (SONAME, NEEDED, RUNPATH: see
:func:`expose_dynlibs` and :func:`check_lower_needs`); other files keep the file name.
docs/layer-contract.md gives the reasons.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvlayers import layout
from venvlayers._fs import sha256_file, staged_dir
from venvlayers._injected import postinstall
from venvlayers.build.elf import ElfDynamic, read_elf_dynamic, resolves_itself
from venvlayers.errors import BuildError

# The application launcher used when lower layers expose shared libraries.
DYNLIB_LAUNCHER = "bin/python-dynlib"

_EXTENSION_MODULE = re.compile(r"\.(cpython-[^.]+|abi3|pypy[^.]*)\.so$")
_VERSIONED_SONAME = re.compile(r"\.so(\.\d+)+$")
_ELF_NAME = re.compile(r"\.so(\.\d+)*$")
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
    layer_dir: Path,
    *,
    exclude: Sequence[str] = (),
    site_dir: str | None = None,
    layer_name: str | None = None,
    report: Callable[[str], None] = lambda _message: None,
) -> list[str]:
    """Link the libraries in site-packages from ``share/venv/dynlib``; return their paths.

    ``site_dir`` (relative to ``layer_dir``) defaults to every ``lib/*/site-packages``.
    ``exclude`` globs (``dynlib_exclude``, see :func:`exclude_matcher`) leave libraries out.
    An ELF library is linked under its SONAME (the name other ELF files record in their
    NEEDED entries) and under its file name when that differs; any other library under its
    file name. A name shared by identical copies is linked once (numpy.libs and scipy.libs
    vendor the same library). A name shared by different ELF libraries is reported once and
    linked to none of them (see :func:`check_lower_needs` for when that fails a build);
    different non-ELF libraries (macOS) with one name are an error. Returned paths are
    relative to ``layer_dir``. Any earlier dynlib folder is replaced, and removed when
    nothing is exposed.
    """
    name = layer_name or layer_dir.name
    dynlib_dir = layer_dir / layout.DYNLIB_DIR
    links: dict[str, Path] = {}
    if sys.platform != "win32":
        catalogue = _catalogue(layer_dir, site_dir, exclude_matcher(exclude))
        for link_name, copies in catalogue.items():
            distinct = _distinct(copies)
            if len(distinct) == 1:
                links[link_name] = distinct[0].path
            elif all(library.elf is not None for library in distinct):
                report(
                    f"warning: {name}: {len(distinct)} different shared libraries named "
                    f"{link_name!r} ({_list(distinct, layer_dir)}); none is exposed to upper "
                    "layers (one that needs it fails to build)"
                )
            else:
                first, second = (library.path.relative_to(layer_dir) for library in distinct[:2])
                raise BuildError(
                    f"{name}: two different shared libraries named {link_name!r}: "
                    f"{first.as_posix()} and {second.as_posix()}; add a glob matching one of "
                    "them to the layer's dynlib_exclude"
                )
    if not links:
        if dynlib_dir.is_symlink() or dynlib_dir.is_file():
            dynlib_dir.unlink()
        elif dynlib_dir.exists():
            shutil.rmtree(dynlib_dir)
        return []
    with staged_dir(dynlib_dir) as staging:
        for link_name, library in links.items():
            (staging / link_name).symlink_to(os.path.relpath(library, dynlib_dir))
    exposed = sorted(set(links.values()))
    return [library.relative_to(layer_dir).as_posix() for library in exposed]


def check_lower_needs(
    layer_dir: Path,
    lower_dirs: Sequence[Path],
    *,
    layer_name: str | None = None,
    report: Callable[[str], None] = lambda _message: None,
) -> None:
    """Fail when an ELF file of this layer needs a library its lower layers leave ambiguous.

    Every ``*.so`` / ``*.so.N`` ELF file in the layer's site-packages is read. A NEEDED
    library that the file's own RPATH/RUNPATH finds, or that a lower layer (``lower_dirs``,
    in ``dynlib_dirs`` order) exposes, is resolved. One that a lower layer holds as several
    different files (and so does not expose) is a BuildError naming the file, the library
    and the candidates. One that a lower layer holds once but leaves out through its
    ``dynlib_exclude`` is reported: excluding it was the stack author's choice, and the
    library may be loaded already or come from the system. A library no layer holds is the
    system's business (libc, the GPU driver) and is not checked.
    """
    name = layer_name or layer_dir.name
    unresolved: dict[str, list[Path]] = {}
    for path in sorted(_elf_candidates(layer_dir)):
        info = read_elf_dynamic(path)
        if info is None:
            continue
        for needed in info.needed:
            if "/" not in needed and not resolves_itself(path, info, needed):
                unresolved.setdefault(needed, []).append(path)
    exposed = [_exposed_names(lower) for lower in lower_dirs]
    missing = {
        needed: users
        for needed, users in unresolved.items()
        if not any(needed in names for names in exposed)
    }
    if not missing:
        return
    for lower in lower_dirs:
        catalogue = _catalogue(lower, None, lambda _path: False)
        for needed, users in missing.items():
            distinct = _distinct(catalogue.get(needed, []))
            if not distinct:
                continue
            user = users[0].relative_to(layer_dir).as_posix()
            holder = lower.name
            if len(distinct) > 1:
                raise BuildError(
                    f"{name}: {user} needs {needed!r}, which {holder} does not expose because "
                    f"it holds {len(distinct)} different libraries of that name "
                    f"({_list(distinct, lower.parent)}); add a glob matching all but one of "
                    f"them to {holder}'s dynlib_exclude"
                )
            report(
                f"warning: {name}: {user} needs {needed!r}, which {holder}'s dynlib_exclude "
                f"keeps from being exposed ({_list(distinct, lower.parent)}); it loads only if "
                "it is loaded already or the system provides it"
            )
        missing = {n: u for n, u in missing.items() if n not in catalogue}


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


def exclude_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Whether a library's path (relative to its layer, ``/`` separators) is excluded.

    venvstacks' ``dynlib_exclude`` semantics: each pattern, with ``/`` put in front, is a
    recursive glob that must match the end of the path, starting at a folder boundary
    (``glob.translate(recursive=True, include_hidden=True)`` applied with ``re.search``).
    ``**`` as a whole segment crosses any number of folders (none included), ``*`` and
    ``?`` stay within one name and match leading dots too, ``[...]`` is a character class.
    So ``libfoo.so*`` matches that name in any folder, ``numpy.libs/*`` the files directly
    in any ``numpy.libs/``, and ``triton/**`` every file at any depth below any ``triton/``.
    venvstacks matches the absolute path of the build folder; here it is the path inside the
    layer, so that a build folder's location cannot change what is excluded.
    """
    compiled = [re.compile(_glob_regex(f"/{pattern}")) for pattern in patterns]
    return lambda relative: any(regex.search(f"/{relative}") for regex in compiled)


def _glob_regex(pattern: str) -> str:
    parts = pattern.split("/")
    last = len(parts) - 1
    out: list[str] = []
    for index, part in enumerate(parts):
        if part == "**":
            if index == last:
                out.append(".*")
            elif parts[index + 1] != "**":  # a run of ** is one: the last of it is kept
                out.append("(?:.+/)?")
        elif part == "*":
            out.append("[^/]+/" if index < last else "[^/]+")
        else:
            out.append(_name_regex(part))
            if index < last:
                out.append("/")
    return rf"(?s:{''.join(out)})\Z"


_ANY_IN_NAME = "[^/]*"


def _name_regex(name: str) -> str:
    """fnmatch rules within one path segment: ``*`` and ``?`` never match ``/``."""
    out: list[str] = []
    i, n = 0, len(name)
    while i < n:
        char = name[i]
        i += 1
        if char == "*":
            if not out or out[-1] != _ANY_IN_NAME:
                out.append(_ANY_IN_NAME)
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            j = i + 1 if i < n and name[i] == "!" else i
            if j < n and name[j] == "]":
                j += 1
            end = name.find("]", j)
            if end < 0:
                out.append(re.escape(char))
            else:
                out.append(_class_regex(name[i:end]))
                i = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _class_regex(body: str) -> str:
    """A ``[...]`` class: ``!`` negates, ``a-z`` ranges (empty ranges dropped, as fnmatch does)."""
    negate = body.startswith("!")
    chars = body[1:] if negate else body
    items: list[str] = []
    k = 0
    while k < len(chars):
        if k + 2 < len(chars) and chars[k + 1] == "-":
            low, high = chars[k], chars[k + 2]
            if low <= high:
                items.append(f"{re.escape(low)}-{re.escape(high)}")
            k += 3
        else:
            items.append(re.escape(chars[k]))
            k += 1
    if not items:
        return "." if negate else "(?!)"
    return f"[{'^' if negate else ''}{''.join(items)}]"


@dataclass(frozen=True)
class _Library:
    path: Path
    elf: ElfDynamic | None


def _catalogue(
    layer_dir: Path, site_dir: str | None, excluded: Callable[[str], bool]
) -> dict[str, list[_Library]]:
    """The layer's libraries by the names they are linked under, in path order."""
    folders = [layer_dir / site_dir] if site_dir else sorted(layer_dir.glob(_SITE_PACKAGES))
    found = (path for folder in folders for path in _library_files(layer_dir, folder))
    catalogue: dict[str, list[_Library]] = {}
    for path in sorted(found):
        if excluded(path.relative_to(layer_dir).as_posix()):
            continue
        elf = read_elf_dynamic(path)
        library = _Library(path, elf)
        names = [path.name]
        if elf is not None and elf.soname and "/" not in elf.soname:
            # The SONAME first: it is what NEEDED entries of other files record.
            names = list(dict.fromkeys([elf.soname, path.name]))
        for link_name in names:
            catalogue.setdefault(link_name, []).append(library)
    return catalogue


def _distinct(libraries: Sequence[_Library]) -> list[_Library]:
    """One library per content, the first in path order of each."""
    kept: list[_Library] = []
    for library in libraries:
        if not any(_same_content(other.path, library.path) for other in kept):
            kept.append(library)
    return kept


def _list(libraries: Sequence[_Library], base: Path) -> str:
    return ", ".join(library.path.relative_to(base).as_posix() for library in libraries)


def _exposed_names(layer_dir: Path) -> set[str]:
    dynlib_dir = layer_dir / layout.DYNLIB_DIR
    return {entry.name for entry in dynlib_dir.iterdir()} if dynlib_dir.is_dir() else set()


def _elf_candidates(layer_dir: Path) -> Iterator[Path]:
    """Files in site-packages named like ELF libraries or extension modules, links left out."""
    for folder in sorted(layer_dir.glob(_SITE_PACKAGES)):
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                path = Path(root, name)
                if _ELF_NAME.search(name) and not path.is_symlink() and path.is_file():
                    yield path


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
