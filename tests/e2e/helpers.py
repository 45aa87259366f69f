"""Helpers for end-to-end tests: run the CLI and interpreters as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "sklearn-demo"


def venvlayers(
    *args: str | os.PathLike[str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "VENVLAYERS_RUNTIME_SOURCE": "local"},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"venvlayers {' '.join(map(str, args))} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def run_python(python: Path, code: str, *extra: str) -> str:
    result = subprocess.run(
        [str(python), "-c", code, *extra], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def layer_dirs(build_dir: Path) -> Sequence[Path]:
    return sorted(p for p in build_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
