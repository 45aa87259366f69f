"""Copy an application's launch and support modules into its layer, filtered as
:func:`venvlayers.spec.module_files` says."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path

from venvlayers.spec import module_files


def copy_modules(modules: Iterable[Path], dest: Path) -> None:
    """Copy each module (file or folder) into ``dest`` under its own name."""
    for module in modules:
        for source in module_files(module):
            target = (
                dest / module.name / source.relative_to(module)
                if module.is_dir()
                else dest / module.name
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def modules_hash(modules: Iterable[Path]) -> str:
    """A hash of the names and contents of the files that would be copied."""
    digest = hashlib.sha256()
    for module in modules:
        for source in module_files(module):
            relative = source.relative_to(module.parent).as_posix()
            digest.update(relative.encode() + b"\0" + source.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()
