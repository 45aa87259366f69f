"""Run uv on a layer's throwaway project: ``uv lock``, then ``uv export`` as PEP 751.

uv needs an interpreter even for a universal lock; the project's ``requires-python``
admits the running one, while ``environments`` pin the resolution to the runtime's X.Y.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers._proc import run, tool_message
from venvlayers._uv import uv_binary, uv_environment
from venvlayers.errors import LockError
from venvlayers.lock.model import LockedWheel
from venvlayers.lock.uvproject import UvProject


class UvLockFailed(LockError):
    """uv found no solution; the message quotes uv's explanation."""

    def __init__(self, message: str, *, about_wheels: bool) -> None:
        super().__init__(message)
        # uv could not find wheels for some environment (rather than a version conflict).
        self.about_wheels = about_wheels


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
        result = _uv_lock(folder)
        if result.returncode != 0 and project.preferences is not None:
            # The previous pins are only a preference: never let them be why locking fails.
            (folder / "uv.lock").unlink()
            result = _uv_lock(folder)
        if result.returncode != 0:
            explanation = _explanation(result)
            raise UvLockFailed(
                f"{label}: cannot be locked; uv says:\n{explanation}",
                about_wheels=any(sign in explanation for sign in _WHEEL_FAILURES),
            )
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


def _uv_lock(folder: Path) -> subprocess.CompletedProcess[str]:
    return run(
        [
            uv_binary(), "lock", "--config-file", folder / "uv.toml",
            "--python", sys.executable, "--color", "never",
        ],
        what="uv lock",
        cwd=folder,
        env=uv_environment(),
        check=False,
    )  # fmt: skip


def _explanation(result: subprocess.CompletedProcess[str]) -> str:
    """uv's message without its interpreter line and hints about uv's own project settings
    (venvlayers sets the environments from the layer's platforms)."""
    lines = tool_message(result).splitlines()
    kept = [
        line
        for line in lines
        if not line.strip().startswith("Using ") and "tool.uv.environments" not in line
    ]
    return "\n".join(kept)


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
