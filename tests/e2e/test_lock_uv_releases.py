"""A lock's identity does not depend on the uv release that wrote it.

The example stack's committed locks are relocked with the oldest and the newest uv that
pyproject.toml admits, each installed beside venvlayers in a fresh environment: nothing
may be rewritten, and no versioned layer may get a new lock_version.
"""

from __future__ import annotations

import filecmp
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.e2e.helpers import EXAMPLE, REPO

pytestmark = [pytest.mark.slow, pytest.mark.network]


def supported_uv_range() -> tuple[str, str]:
    """The floor of the declared range and its exclusive ceiling."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (spec,) = [d for d in project["dependencies"] if re.match(r"uv\b", d)]
    floor = re.search(r">=\s*([\d.]+)", spec)
    ceiling = re.search(r"<\s*([\d.]+)", spec)
    assert floor and ceiling, f"declare the supported uv range as uv>=X,<Y (found {spec!r})"
    return floor.group(1), ceiling.group(1)


def venv_with_uv(folder: Path, requirement: str) -> Path:
    """A fresh environment holding venvlayers (this checkout) and the given uv."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv, "uv is installed beside the test interpreter"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, folder], check=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", folder / "bin/python", "-e", REPO, requirement],
        check=True,
    )
    return folder / "bin" / "venvlayers"


def differences(left: Path, right: Path) -> list[str]:
    found = []
    compare = filecmp.dircmp(left, right)
    found += [str(left / n) for n in compare.left_only + compare.right_only]
    found += [str(left / n) for n in compare.diff_files]
    for sub in compare.common_dirs:
        found += differences(left / sub, right / sub)
    return found


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_relocking_with_any_supported_uv_rewrites_nothing(tmp_path: Path, which: str) -> None:
    floor, ceiling = supported_uv_range()
    requirement = f"uv=={floor}" if which == "oldest" else f"uv>={floor},<{ceiling}"
    cli = venv_with_uv(tmp_path / "venv", requirement)
    stack = tmp_path / "stack"
    shutil.copytree(
        EXAMPLE, stack, ignore=shutil.ignore_patterns("_build", "_artifacts", "_deploy")
    )
    # Versioned layers show a bump at once in their lock_version.
    spec = stack / "venvstacks.toml"
    spec.write_text(
        spec.read_text().replace('name = "sklearn"\n', 'name = "sklearn"\nversioned = true\n'),
    )
    first = subprocess.run([cli, "lock", stack], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    settled = tmp_path / "settled"
    shutil.copytree(stack / "requirements", settled)

    again = subprocess.run([cli, "lock", stack], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert differences(settled, stack / "requirements") == []
    assert re.search(r"^framework-sklearn: unchanged \(lock_version 1\b", again.stdout, re.M)
    # Only the metadata of the versioned framework changed ('versioned' is an input); every
    # committed lock file is exactly as the other uv release wrote it.
    for lock in EXAMPLE.glob("requirements/*/pylock.*.toml"):
        relocked = stack / lock.relative_to(EXAMPLE)
        assert relocked.read_bytes() == lock.read_bytes(), lock.name
