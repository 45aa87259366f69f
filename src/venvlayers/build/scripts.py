"""Keep a layer's console scripts working wherever the layer is moved.

uv writes relocatable launchers into a venv created with ``uv venv --relocatable``: a
``#!/bin/sh`` header that runs ``python`` from the script's own folder. Installs into a runtime
layer (``uv pip install --python <runtime python>``) get an absolute shebang instead,
``#!/abs/path/bin/python3.11``, or, for long paths or paths with spaces, a sh header that execs
an absolute path. Both are rewritten into the relocatable form, pointing at the layer's own
interpreter; everything after the header is kept byte for byte.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import sys
from pathlib import Path

from venvlayers import layout
from venvlayers._fs import atomic_write_bytes
from venvlayers.errors import BuildError

_SH_SHEBANG = b"#!/bin/sh"
# The second line of an absolute sh-form header, as uv and pip write it.
_SH_EXEC_ABSOLUTE = re.compile(rb"""^'''exec' (['"]?)(/[^'"]*)\1 "\$0" "\$@"$""")
_SH_HEADER_END = b"' '''"
_RUNTIME_PYTHON = re.compile(r"python\d+\.\d+")
# A shebang's line is read at most this far; longer ones are left alone.
_MAX_HEADER = 4096


def relocatable_header(python_name: str, args: tuple[str, ...] = ()) -> bytes:
    """The sh header running ``python_name`` from the script's own (link-resolved) folder."""
    extra = "".join(f" {shlex.quote(arg)}" for arg in args)
    line = (
        f"""'''exec' "$(dirname -- "$(realpath -- "$0")")"/{_single_quoted(python_name)}"""
        f'''{extra} "$0" "$@"'''
    )
    return (
        b"\n".join([_SH_SHEBANG, line.encode("utf-8", "surrogateescape"), _SH_HEADER_END]) + b"\n"
    )


def _single_quoted(word: str) -> str:
    """``word`` in single quotes, always, as uv writes the interpreter's name."""
    return "'" + word.replace("'", "'\"'\"'") + "'"


def make_scripts_relocatable(layer_dir: Path, *, python: str | None = None) -> list[str]:
    """Rewrite absolute-python script headers in the layer's scripts folder; return their paths.

    ``python`` is the layer's interpreter relative to ``layer_dir`` and must sit in the scripts
    folder; by default ``bin/python`` for a venv (a folder with ``pyvenv.cfg``) and the
    runtime's ``bin/pythonX.Y`` otherwise. Binary files, links and scripts already
    relocatable are left untouched. Returned paths are relative to ``layer_dir``. Nothing to
    do on Windows, where scripts are ``.exe`` launchers.
    """
    scripts = layout.scripts_dir()
    rewritten: list[str] = []
    if sys.platform == "win32" or not (layer_dir / scripts).is_dir():
        return rewritten
    python = python or _default_python(layer_dir)
    if posixpath.dirname(python) != scripts:
        raise BuildError(f"{layer_dir.name}: interpreter {python!r} is not in {scripts}/")
    python_name = posixpath.basename(python)
    for script in sorted((layer_dir / scripts).iterdir()):
        if script.is_symlink() or not script.is_file():
            continue
        content = script.read_bytes()
        new_content = _relocated(content, python_name)
        if new_content is not None:
            atomic_write_bytes(script, new_content, mode=script.stat().st_mode & 0o7777)
            rewritten.append(f"{scripts}/{script.name}")
    return rewritten


def _default_python(layer_dir: Path) -> str:
    if (layer_dir / "pyvenv.cfg").is_file():
        return layout.venv_python()
    scripts = layout.scripts_dir()
    versioned = sorted(
        path.name
        for path in (layer_dir / scripts).glob("python3.*")
        if _RUNTIME_PYTHON.fullmatch(path.name)
    )
    if not versioned:
        raise BuildError(
            f"{layer_dir.name}: no {scripts}/python3.X interpreter to point scripts at"
        )
    return f"{scripts}/{versioned[0]}"


def _relocated(content: bytes, python_name: str) -> bytes | None:
    """``content`` with a relocatable header, or None when it has no absolute-python header."""
    if not content.startswith(b"#!"):
        return None
    lines = content[:_MAX_HEADER].split(b"\n", 3)
    shebang = lines[0].rstrip(b"\r")
    if shebang == _SH_SHEBANG and len(lines) == 4:
        match = _SH_EXEC_ABSOLUTE.match(lines[1].rstrip(b"\r"))
        if match and _is_python(match.group(2)) and lines[2].rstrip(b"\r") == _SH_HEADER_END:
            return relocatable_header(python_name) + content.split(b"\n", 3)[3]
        return None
    words = shebang[2:].split()
    if len(lines) < 2 or not words or not words[0].startswith(b"/") or not _is_python(words[0]):
        return None
    args = tuple(word.decode("utf-8", "surrogateescape") for word in words[1:])
    return relocatable_header(python_name, args) + content.split(b"\n", 1)[1]


def _is_python(interpreter: bytes) -> bool:
    return posixpath.basename(interpreter).startswith(b"python")
