"""What a layer folder holds, as published and as verified: the selection and link rules.

A scan walks the folder once (``lstat`` only, no file reads) and returns its entries in
archive order: depth first, names sorted by code point within each folder, so the order
never depends on the file system or the locale.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from venvlayers import layout
from venvlayers.errors import PublishError

EXECUTABLE_MODE = 0o755
REGULAR_MODE = 0o644

# Byte-compiling (at deploy, or at publish with --bytecode) leaves out test suites shipped
# inside packages (scipy, scikit-learn, the stdlib's own), a third of the source and almost
# never imported by an app, and the stdlib's IDE, demos and 2to3; they compile on first use,
# if ever. A regular expression searched in each source's path.
BYTECODE_SKIP = r"[/\\](tests?|testing|idlelib|turtledemo|lib2to3|ensurepip)[/\\]"

# A venv's links to the interpreter of its base runtime: they point outside the layer by
# design and postinstall.py recreates them from ``base_python`` on the target.
_INTERPRETER_LINK = re.compile(r"bin/python(3(\.\d+)?)?|Scripts/pythonw?[^/]*\.exe")


class EntryKind(Enum):
    DIRECTORY = "directory"
    FILE = "file"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class LayerEntry:
    """One published member: ``path`` is relative to the layer root with ``/`` separators."""

    path: str
    kind: EntryKind
    source: Path
    size: int = 0
    executable: bool = False
    # For symlinks: the stored target, always relative and always inside the layer.
    link: str = ""


def is_cache(name: str) -> bool:
    """Byte-code caches: rebuilt by postinstall.py on the target, never published."""
    return name == "__pycache__" or name.endswith(".pyc")


def is_build_only(path: str) -> bool:
    """Files of the build folder that a published layer leaves out (``path`` is layer-relative)."""
    if path == layout.LAYER_MANIFEST:
        return True  # always regenerated from the content actually archived
    if "/" in path:
        return False
    return path in layout.BUILD_ONLY_FILES or path.endswith(layout.BUILD_RECORD_SUFFIX)


def is_interpreter_link(path: str) -> bool:
    return _INTERPRETER_LINK.fullmatch(path) is not None


def scan_layer(layer_dir: Path, *, strict: bool = True) -> list[LayerEntry]:
    """The entries to publish from ``layer_dir``, in archive order (the root itself excluded).

    With ``strict`` (publishing), a symlink leaving the layer raises :class:`PublishError`
    unless it is an interpreter link, which is left out. Without it (verifying a deployed
    layer), such a link is listed with its target as read, so a comparison reports it.
    """
    if not layer_dir.is_dir():
        raise PublishError(f"{layer_dir}: layer folder not found")
    roots = _root_spellings(layer_dir)
    return list(_walk(layer_dir, "", roots, strict=strict))


def _root_spellings(layer_dir: Path) -> tuple[str, ...]:
    """The absolute spellings under which a symlink may name the layer root."""
    spelled = os.path.normpath(os.path.abspath(layer_dir))
    real = os.path.realpath(layer_dir)
    return (spelled,) if spelled == real else (spelled, real)


def _walk(
    folder: Path, prefix: str, roots: tuple[str, ...], *, strict: bool
) -> Iterator[LayerEntry]:
    try:
        with os.scandir(folder) as listing:
            children = sorted(listing, key=lambda child: child.name)
    except OSError as exc:
        raise PublishError(f"{folder}: cannot list folder: {exc.strerror}") from exc
    for child in children:
        rel = f"{prefix}{child.name}"
        if is_cache(child.name) or is_build_only(rel):
            continue
        _check_name(rel, folder)
        source = Path(child.path)
        info = child.stat(follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            entry = _symlink_entry(rel, source, roots, strict=strict)
            if entry is not None:
                yield entry
        elif stat.S_ISDIR(info.st_mode):
            yield LayerEntry(rel, EntryKind.DIRECTORY, source)
            yield from _walk(source, f"{rel}/", roots, strict=strict)
        elif stat.S_ISREG(info.st_mode):
            # Hard links are published as independent regular files (see docs/archives.md).
            executable = bool(info.st_mode & 0o111)
            yield LayerEntry(rel, EntryKind.FILE, source, info.st_size, executable)
        else:
            raise PublishError(f"{source}: not a file, folder or symlink; remove it from the layer")


def _check_name(rel: str, folder: Path) -> None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PublishError(
            f"{folder}: file name {rel!r} is not valid UTF-8; rename it to publish the layer"
        ) from exc


def _symlink_entry(
    rel: str, source: Path, roots: tuple[str, ...], *, strict: bool
) -> LayerEntry | None:
    target = os.readlink(source)
    stored = _inside_target(rel, target, roots)
    if stored is None:
        stored = _real_target(rel, source, roots)
    if stored is not None:
        return LayerEntry(rel, EntryKind.SYMLINK, source, link=stored)
    if is_interpreter_link(rel):
        return None
    if not strict:
        return LayerEntry(rel, EntryKind.SYMLINK, source, link=target)
    raise PublishError(
        f"{source}: symlink points outside the layer (to {target}); "
        "make it point inside the layer folder or remove it"
    )


def _inside_target(rel: str, target: str, roots: tuple[str, ...]) -> str | None:
    """``target`` as a relative link that stays inside the layer, or None if it leaves it.

    Relative targets are kept as written when they resolve inside the layer; absolute ones
    into the layer become relative, since an absolute link would dangle after unpacking.
    """
    link_dir = os.path.dirname(rel)
    if not os.path.isabs(target):
        resolved = os.path.normpath(os.path.join(link_dir, target))
        return target if _within(resolved) else None
    absolute = os.path.normpath(target)
    for root in roots:
        if absolute == root or absolute.startswith(root + os.sep):
            inside = os.path.relpath(absolute, root)
            return _relative_link(link_dir, inside)
    return None


def _real_target(rel: str, source: Path, roots: tuple[str, ...]) -> str | None:
    """A link whose written target leaves the layer may still land inside it once every
    symlink on the way is resolved (e.g. through a link to the layer's own parent folder)."""
    real = os.path.realpath(source)
    for root in roots:
        if real == root or real.startswith(root + os.sep):
            return _relative_link(os.path.dirname(rel), os.path.relpath(real, root))
    return None


def _relative_link(link_dir: str, inside: str) -> str:
    relative = os.path.relpath(inside, link_dir or os.curdir)
    return relative.replace(os.sep, "/")


def _within(resolved: str) -> bool:
    escapes = resolved == os.pardir or resolved.startswith(os.pardir + os.sep)
    return not escapes and not os.path.isabs(resolved)
