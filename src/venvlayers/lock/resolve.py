"""Run uv on a layer's throwaway project: ``uv lock``, then ``uv export`` as PEP 751.

uv needs an interpreter even for a universal lock: a local one of the runtime's X.Y when
there is one (uv's hints then speak of the right Python), else the running one, which the
project's ``requires-python`` admits; ``environments`` pin the resolution to the X.Y.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers._proc import run
from venvlayers._uv import uv_binary, uv_environment
from venvlayers.errors import LockError
from venvlayers.lock.model import LockedWheel
from venvlayers.lock.uv_messages import render, statements, summarize, without_false_hints
from venvlayers.lock.uvproject import UvProject

log = logging.getLogger(__name__)


class UvLockFailed(LockError):
    """uv found no solution; the message names the package and the reason in one line."""

    def __init__(self, message: str, *, about_wheels: bool, details: str = "") -> None:
        super().__init__(message)
        # uv could not find wheels for some environment (rather than a version conflict).
        self.about_wheels = about_wheels
        # uv's whole explanation, for -v and for finding the pins it mentions.
        self.details = details


_WHEEL_FAILURES = ("no usable wheels", "-compatible wheels", "Wheels are required for")


@dataclass(frozen=True)
class ResolvedPackage:
    """One package of uv's answer, before venvlayers narrows it to the layer."""

    name: str
    version: str
    marker: str | None
    index: str | None
    wheels: tuple[LockedWheel, ...]


def resolve(project: UvProject, *, label: str, lock_folder: Path) -> list[ResolvedPackage]:
    """Lock ``project`` with uv; raise :class:`LockError` quoting uv when it cannot."""
    with tempfile.TemporaryDirectory(prefix="venvlayers-lock-") as tmp:
        folder = Path(tmp)
        project.write(folder)
        result = _uv_lock(folder, project.python)
        if result.returncode != 0 and project.preferences is not None:
            # The previous pins are only a preference: never let them be why locking fails.
            (folder / "uv.lock").unlink()
            result = _uv_lock(folder, project.python)
        if result.returncode != 0:
            raise _failure(result, label, python_matches=project.python_matches)
        exported = run(
            [
                uv_binary(), "export", "--format", "pylock.toml", "--frozen",
                "--no-emit-project", "--no-header", "--config-file", folder / "uv.toml",
            ],
            what=f"{label}: uv export",
            cwd=folder,
            env=uv_environment(),
        )  # fmt: skip
    data = tomllib.loads(exported.stdout)
    return [_package(p, lock_folder) for p in data.get("packages", [])]


def _uv_lock(folder: Path, python: str) -> subprocess.CompletedProcess[str]:
    return run(
        [
            uv_binary(), "lock", "--config-file", folder / "uv.toml",
            "--python", python, "--color", "never",
        ],
        what="uv lock",
        cwd=folder,
        env=uv_environment(),
        check=False,
    )  # fmt: skip


def _failure(
    result: subprocess.CompletedProcess[str], label: str, *, python_matches: bool
) -> UvLockFailed:
    """One line for the user; uv's whole text (less hints that do not apply) for -v."""
    output = "\n".join(part for part in (result.stderr, result.stdout) if part)
    found = without_false_hints(statements(output), python_matches=python_matches)
    details = render(found)
    log.info("%s: uv lock failed:\n%s", label, details)
    return UvLockFailed(
        f"{label}: cannot be locked: {summarize(found)}",
        about_wheels=any(sign in details for sign in _WHEEL_FAILURES),
        details=details,
    )


def _package(data: dict[str, Any], lock_folder: Path) -> ResolvedPackage:
    index = data.get("index")
    return ResolvedPackage(
        name=data["name"],
        version=data["version"],
        marker=data.get("marker"),
        # A local folder is no index another machine can use.
        index=index if isinstance(index, str) and not index.startswith("file:") else None,
        wheels=tuple(_wheel(w, lock_folder) for w in data.get("wheels", [])),
    )


def _wheel(data: dict[str, Any], lock_folder: Path) -> LockedWheel:
    url = data.get("url")
    path = data.get("path")
    if isinstance(url, str) and url.startswith("file:"):
        path, url = urllib.parse.unquote(urllib.parse.urlparse(url).path), None
    if path is not None:
        # Recorded relative to the lock so the committed file names no machine's folders.
        path = Path(os.path.relpath(path, lock_folder)).as_posix()
    location = url or path or ""
    name = data.get("name") or urllib.parse.unquote(location.rsplit("/", 1)[-1])
    return LockedWheel(name=name, url=url, path=path, sha256=data["hashes"]["sha256"])
