"""Copying an installed CPython prefix, keeping only what a runtime layer needs.

Left out: the test suite, bytecode caches, the static libpython, third-party packages and
their scripts (a runtime layer gets its packages from its own lock, not from whatever the
host interpreter happened to have installed). pip stays, as in python-build-standalone.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# Test packages of the standard library, relative to lib/pythonX.Y/.
STDLIB_TEST_DIRS = frozenset(
    {
        "test",
        "idlelib/idle_test",
        "tkinter/test",
        "lib2to3/tests",
        "unittest/test",
        "ctypes/test",
        "sqlite3/test",
        "distutils/tests",
    }
)
# Scripts that belong to CPython itself or to pip; anything else in bin/ is third-party.
_OWN_SCRIPT = re.compile(
    r"^(python[0-9.]*[dmt]?(-config)?|pip[0-9.]*|idle[0-9.]*|pydoc[0-9.]*|2to3(-[0-9.]+)?)$"
)
# Besides the stdlib and libpython, lib/ may hold Tcl/Tk support (uv-managed builds).
_LIB_EXTRAS = re.compile(
    r"^(libpython.*\.so(\.[0-9.]+)?|libpython.*\.dylib|(tcl|tk|itcl|thread)[0-9].*|lib(tcl|tk)[0-9.]+\.so.*)$"
)
_SITE_PACKAGES_KEPT = re.compile(r"^(README\.txt|pip|pip-[^/]+\.dist-info)$")


@dataclass
class CopyStats:
    """What the copy left out, for the report."""

    third_party_scripts: list[str] = field(default_factory=list)
    third_party_packages: list[str] = field(default_factory=list)


def copy_prefix(prefix: Path, stdlib: Path, include: Path, dest: Path) -> CopyStats:
    """Copy the runtime parts of ``prefix`` into the empty folder ``dest``.

    ``stdlib`` (lib/pythonX.Y) and ``include`` (include/pythonX.Y) are the interpreter's own
    answers, so unusual layouts (abiflags like ``3.13t``) need no guessing.
    """
    stats = CopyStats()
    for sub in ("bin", "lib", "include", "share/man/man1"):
        (dest / sub).mkdir(parents=True, exist_ok=True)

    for entry in sorted((prefix / "bin").iterdir()):
        if _OWN_SCRIPT.match(entry.name):
            _copy_entry(entry, dest / "bin" / entry.name)
        else:
            stats.third_party_scripts.append(entry.name)

    for entry in sorted((prefix / "lib").iterdir()):
        if _LIB_EXTRAS.match(entry.name):
            _copy_entry(entry, dest / "lib" / entry.name)
    pkgconfig = prefix / "lib" / "pkgconfig"
    if pkgconfig.is_dir():
        (dest / "lib" / "pkgconfig").mkdir()
        for pc in sorted(pkgconfig.glob("python*.pc")):
            _copy_entry(pc, dest / "lib" / "pkgconfig" / pc.name)

    stdlib_rel = stdlib.relative_to(prefix)
    _copy_stdlib(stdlib, dest / stdlib_rel, stats)
    if include.is_dir():
        shutil.copytree(include, dest / include.relative_to(prefix), symlinks=True)
    for page in sorted((prefix / "share" / "man" / "man1").glob("python*")):
        _copy_entry(page, dest / "share" / "man" / "man1" / page.name)
    return stats


def _copy_entry(source: Path, target: Path) -> None:
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=True, ignore=_ignore_caches)
    else:
        shutil.copy2(source, target)


def _ignore_caches(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))]


def _copy_stdlib(stdlib: Path, target: Path, stats: CopyStats) -> None:
    def ignore(folder: str, names: list[str]) -> list[str]:
        rel = Path(folder).relative_to(stdlib).as_posix()
        skipped = set(_ignore_caches(folder, names))
        for name in names:
            path = name if rel == "." else f"{rel}/{name}"
            if path in STDLIB_TEST_DIRS:
                skipped.add(name)
            elif rel.startswith("config-") and name.endswith(".a"):
                # The static libpython: only for linking a new interpreter, and the biggest file.
                skipped.add(name)
            elif rel == "site-packages" and not _SITE_PACKAGES_KEPT.match(name):
                stats.third_party_packages.append(name)
                skipped.add(name)
        return sorted(skipped)

    shutil.copytree(stdlib, target, symlinks=True, ignore=ignore)


def fix_symlinks(dest: Path, old_prefixes: tuple[str, ...]) -> list[str]:
    """Make every symlink in ``dest`` relative and inside it; return what had to change.

    Absolute links into the old prefix become relative; links leaving the copy are replaced
    by a copy of their target; dangling links are removed.
    """
    changed: list[str] = []
    for link in sorted(p for p in dest.rglob("*") if p.is_symlink()):
        target = os.readlink(link)
        rel = link.relative_to(dest).as_posix()
        if os.path.isabs(target):
            inside = next((p for p in old_prefixes if target.startswith(p + "/")), None)
            if inside is not None:
                new_target = dest / target[len(inside) + 1 :]
                link.unlink()
                os.symlink(os.path.relpath(new_target, link.parent), link)
                changed.append(f"{rel}: made relative")
                continue
        resolved = (link.parent / target).resolve()
        if not resolved.exists():
            link.unlink()
            changed.append(f"{rel}: dangling, removed")
        elif not resolved.is_relative_to(dest.resolve()):
            link.unlink()
            _copy_entry(resolved, link)
            changed.append(f"{rel}: pointed outside, replaced by a copy")
    return changed


def tree_size(root: Path) -> int:
    """Bytes in regular files under ``root`` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
