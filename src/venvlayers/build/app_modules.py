"""Copy an application's launch and support modules into its layer, filtered.

Files ignored by git (when the spec is in a git checkout), ``.git*`` names and
``__pycache__`` folders are left out.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from venvlayers._proc import run
from venvlayers.errors import ToolError


def module_files(module: Path) -> list[Path]:
    """The files of a module file or package folder that belong in the layer, sorted."""
    if module.is_file():
        return [module]
    candidates = sorted(
        path
        for path in module.rglob("*")
        if path.is_file() and not _excluded(path.relative_to(module))
    )
    ignored = _git_ignored(module, candidates)
    return [path for path in candidates if path not in ignored]


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


def _excluded(relative: Path) -> bool:
    return any(part == "__pycache__" or part.startswith(".git") for part in relative.parts) or (
        relative.suffix in (".pyc", ".pyo")
    )


def _git_ignored(root: Path, paths: list[Path]) -> set[Path]:
    """The paths git would ignore; empty outside a git checkout or without git."""
    if not paths:
        return set()
    try:
        result = run(
            ["git", "-C", str(root), "check-ignore", "--stdin", "-z"],
            what="git check-ignore",
            input="\0".join(str(p) for p in paths),
            check=False,
        )
    except ToolError:
        return set()
    # 0: some ignored, 1: none ignored, 128: not a git checkout.
    if result.returncode not in (0, 1):
        return set()
    return {Path(item) for item in _split_nul(result.stdout)}


def _split_nul(text: str) -> Iterator[str]:
    return (item for item in text.split("\0") if item)
