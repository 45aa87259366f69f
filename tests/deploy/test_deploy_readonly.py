"""A read-only target: deploy, remove and gc refuse in one line and change nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.deploy_support import deploy_command, fake_stack


def mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs of its own, so the test can make it read-only (root only)."""
    folder = tmp_path / "volume"
    folder.mkdir()
    if shutil.which("mount") is None or not mount(
        "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)
    ):
        pytest.skip("needs permission to mount a tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def venvlayers(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args)], capture_output=True, text=True
    )


def snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_read_only_target_is_one_line_for_deploy_remove_and_gc(
    volume: Path, tmp_path: Path
) -> None:
    out = fake_stack(tmp_path / "stack")
    target = volume / "target"
    first = subprocess.run(deploy_command(out, target, "hello"), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = snapshot(target)
    assert mount("-o", "remount,ro", str(volume))

    for args in (
        ["deploy", out, "--target", target],
        ["remove", target, "hello"],
        ["gc", target],
        ["deploy", out, "--target", volume / "fresh"],
    ):
        result = venvlayers(*args)
        assert result.returncode == 1, (args, result.stdout)
        assert "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (args, result.stderr)
        assert "read-only" in errors[0], errors[0]
        assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert snapshot(target) == before
    assert not (volume / "fresh").exists()
