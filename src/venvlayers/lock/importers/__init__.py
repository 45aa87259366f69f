"""Requirement sources: one importer per file format, chosen by file name.

Every importer turns a file into PEP 508 requirement strings. Lock-file formats keep
their pins: each locked package becomes ``name==version`` (with its marker, if any).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from venvlayers.errors import LockError
from venvlayers.lock.importers import (
    pipfile_lock,
    poetry_lock,
    pylock_toml,
    pyproject,
    requirements_txt,
    uv_lock,
)

Importer = Callable[[Path], list[str]]

# (file name glob, importer), first match wins.
IMPORTERS: tuple[tuple[str, Importer], ...] = (
    ("pyproject.toml", pyproject.read),
    ("poetry.lock", poetry_lock.read),
    ("Pipfile.lock", pipfile_lock.read),
    ("uv.lock", uv_lock.read),
    ("pylock.toml", pylock_toml.read),
    ("pylock.*.toml", pylock_toml.read),
    ("*.txt", requirements_txt.read),
    ("*.in", requirements_txt.read),
)


def importer_for(path: Path) -> Importer:
    for pattern, importer in IMPORTERS:
        if fnmatch.fnmatchcase(path.name, pattern):
            return importer
    known = ", ".join(pattern for pattern, _ in IMPORTERS)
    raise LockError(f"{path}: unsupported requirements file (supported: {known})")


def import_requirements(path: Path) -> list[str]:
    """The requirements in ``path``, each checked to be a valid PEP 508 requirement."""
    try:
        lines = importer_for(path)(path)
    except OSError as exc:
        raise LockError(f"{path}: cannot read: {exc.strerror}") from None
    for line in lines:
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise LockError(f"{path}: invalid requirement {line!r}: {exc}") from None
    return lines
