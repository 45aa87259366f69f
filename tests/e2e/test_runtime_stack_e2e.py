"""A runtime-only stack: lock, build, and run the built runtime from a new path."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import venvlayers

pytestmark = [pytest.mark.slow, pytest.mark.network]

SPEC = """
[[runtimes]]
name = "py312"
python_implementation = "cpython@3.12"
requirements = ["six"]
platforms = ["linux_x86_64"]
"""


def test_runtime_only_stack_builds_and_moves(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "venvstacks.toml").write_text(SPEC)
    venvlayers("lock", stack)
    built = venvlayers("build", stack)
    assert "py312: built" in built.stdout
    layer = stack / "_build" / "py312"
    meta = json.loads((layer / "share/venv/metadata/venvstacks_layer.json").read_text())
    assert meta["py_version"].startswith("3.12.")
    assert meta["runtime_source"] in {"local", "standalone", "archive"}
    # Installer tools are removed unless the layer asks for them.
    site = layer / meta["site_dir"]
    assert (site / "six.py").is_file()
    assert not list(site.glob("pip*"))
    record = json.loads((stack / "_build" / "py312.build.json").read_text())
    assert record["runtime_source"] in {"local", "standalone", "archive"}

    moved = tmp_path / "elsewhere" / "py312"
    moved.parent.mkdir()
    shutil.copytree(layer, moved, symlinks=True)
    shutil.rmtree(layer)
    code = "import sys, six, ssl, sqlite3, ctypes; print(sys.prefix); print(six.__file__)"
    out = subprocess.run(
        [str(moved / meta["python"]), "-c", code], capture_output=True, text=True, check=True
    )
    prefix, six_file = out.stdout.splitlines()
    assert Path(prefix) == moved
    assert Path(six_file).is_relative_to(moved)
