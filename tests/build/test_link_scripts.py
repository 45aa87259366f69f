"""Console scripts with an absolute python get the relocatable sh header."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from venvlayers.build.scripts import make_scripts_relocatable, relocatable_header
from venvlayers.errors import BuildError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="scripts are .exe on Windows")

BODY = b"# -*- coding: utf-8 -*-\nimport sys\nprint(sys.argv[1:], 'from', sys.prefix)\n"
UV_RELOCATABLE = (
    b"#!/bin/sh\n"
    b'\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")"/\'python\' "$0" "$@"\n'
    b"' '''\n" + BODY
)


def _runtime(root: Path) -> Path:
    """A runtime-like layer whose interpreter is the test interpreter."""
    runtime = root / "cpython@3.11"
    (runtime / "bin").mkdir(parents=True)
    (runtime / "bin/python3.11").symlink_to(sys.executable)
    return runtime


def _script(layer: Path, name: str, content: bytes, mode: int = 0o755) -> Path:
    path = layer / "bin" / name
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_absolute_shebangs_are_rewritten_and_run_after_a_move(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path / "build")
    absolute = str(runtime / "bin/python3.11").encode()
    _script(runtime, "plain", b"#!" + absolute + b"\n" + BODY)
    _script(runtime, "with-flag", b"#!" + absolute + b" -E\n" + BODY, mode=0o750)
    _script(
        runtime,
        "long",
        b"#!/bin/sh\n'''exec' '/a very/long path/bin/python3.11' \"$0\" \"$@\"\n' '''\n" + BODY,
    )
    assert make_scripts_relocatable(runtime) == ["bin/long", "bin/plain", "bin/with-flag"]
    for name in ("plain", "long"):
        assert (runtime / "bin" / name).read_bytes() == relocatable_header("python3.11") + BODY
    assert (runtime / "bin/with-flag").read_bytes().startswith(b"#!/bin/sh\n'''exec' ")
    assert b"/'python3.11' -E \"$0\"" in (runtime / "bin/with-flag").read_bytes()
    assert (runtime / "bin/with-flag").stat().st_mode & 0o777 == 0o750

    moved = runtime.rename(tmp_path / "elsewhere")
    for name in ("plain", "with-flag", "long"):
        result = subprocess.run(
            [str(moved / "bin" / name), "an arg"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("['an arg'] from ")


def test_header_is_the_one_uv_writes() -> None:
    assert relocatable_header("python") + BODY == UV_RELOCATABLE


def test_other_files_are_left_alone(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    untouched = {
        "uv-style": UV_RELOCATABLE,
        "env": b"#!/usr/bin/env python3\n" + BODY,
        "shell": b"#!/bin/bash\necho hi\n",
        "binary": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
        "not-python": b"#!/usr/bin/perl\nprint 1;\n",
    }
    for name, content in untouched.items():
        _script(runtime, name, content)
    (runtime / "bin/link").symlink_to("uv-style")
    assert make_scripts_relocatable(runtime) == []
    for name, content in untouched.items():
        assert (runtime / "bin" / name).read_bytes() == content


def test_venv_scripts_point_at_the_venv_python(tmp_path: Path) -> None:
    venv = tmp_path / "framework-x"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /x\n")
    _script(venv, "tool", b"#!/build/framework-x/bin/python\n" + BODY)
    assert make_scripts_relocatable(venv) == ["bin/tool"]
    assert (venv / "bin/tool").read_bytes() == relocatable_header("python") + BODY


def test_interpreter_must_be_in_the_scripts_folder(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    with pytest.raises(BuildError, match=re.escape("interpreter 'python.exe' is not in bin/")):
        make_scripts_relocatable(runtime, python="python.exe")
    os.unlink(runtime / "bin/python3.11")
    with pytest.raises(BuildError, match=re.escape("no bin/python3.X interpreter")):
        make_scripts_relocatable(runtime)
