"""The files of an application's launch and support modules, as one walk for every stage.

Files ignored by git (when the spec is in a git checkout), ``.git*`` names, ``__pycache__``
folders and byte-code are left out, so what changes a lock's version is exactly what is
copied into the layer.
"""

from __future__ import annotations

from collections.abc import Iterator
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
