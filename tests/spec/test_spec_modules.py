"""One walk of an app's module files: what the lock's version hash sees is what is copied."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from venvlayers.build.app_modules import copy_modules
from venvlayers.lock.inputs import layer_inputs
from venvlayers.spec import load_stack, module_files

SPEC = """
[[runtimes]]
name = "cpython@3.11"
python_implementation = "cpython@3.11"
requirements = []
platforms = ["linux_x86_64"]

[[applications]]
name = "app"
launch_module = "app"
runtime = "cpython@3.11"
requirements = []
versioned = true
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("needs git")
    (tmp_path / "venvstacks.toml").write_text(textwrap.dedent(SPEC))
    package = tmp_path / "app"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__main__.py").write_text("print('app')\n")
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"cache")
    (package / "local-settings.txt").write_text("secret=1\n")
    (tmp_path / ".gitignore").write_text("local-settings.txt\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def version_hash(folder: Path) -> str:
    stack = load_stack(folder)
    return layer_inputs(stack, stack.layer("app-app"), []).version_inputs_hash


def test_gitignored_files_neither_change_the_version_nor_enter_the_layer(
    checkout: Path, tmp_path: Path
) -> None:
    package = checkout / "app"
    assert [p.name for p in module_files(package)] == ["__main__.py"]
    before = version_hash(checkout)
    (package / "local-settings.txt").write_text("secret=2\n")
    assert version_hash(checkout) == before, "an ignored file is not an input"
    (package / "__main__.py").write_text("print('app, changed')\n")
    assert version_hash(checkout) != before

    dest = tmp_path / "layer"
    copy_modules([package], dest)
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["__main__.py"]
