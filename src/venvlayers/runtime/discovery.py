"""Finding installed CPython interpreters: explicit path, pyenv, uv-managed, then PATH.

Finders list folders rather than run interpreters wherever they can (pyenv and uv name their
folders after the exact version), so discovery stays cheap enough to run on every build.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from venvlayers._proc import run
from venvlayers._uv import uv_binary
from venvlayers.errors import RuntimeProviderError, ToolError
from venvlayers.runtime.probe import probe
from venvlayers.runtime.versions import version_key

_PYENV_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
# cpython-3.12.1-linux-x86_64-gnu (free-threaded and debug builds carry a +suffix: skipped)
_UV_VERSION = re.compile(r"^cpython-(\d+)\.(\d+)\.(\d+)-[^+]+$")
_PATH_NAME = re.compile(r"^python3\.(\d+)$")
# Distribution Pythons spread over /usr and rely on distro patches (and often lack venv).
_SYSTEM_PREFIXES = ("/usr", "/")
_SYSTEM_BIN_DIRS = ("/usr/bin", "/bin")


@dataclass(frozen=True)
class LocalInterpreter:
    version: str
    # The interpreter to relocate, e.g. ~/.pyenv/versions/3.11.7/bin/python3.11
    executable: Path
    found_by: str


def pyenv_root() -> Path:
    """``$PYENV_ROOT``, else what ``pyenv root`` says, else ``~/.pyenv``."""
    if env_root := os.environ.get("PYENV_ROOT"):
        return Path(env_root)
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            answer = run([pyenv, "root"], what="pyenv root").stdout.strip()
        except ToolError:
            answer = ""
        if answer:
            return Path(answer)
    return Path.home() / ".pyenv"


def uv_python_dir() -> Path | None:
    """Where uv keeps the Pythons it installs (``uv python dir``)."""
    if env_dir := os.environ.get("UV_PYTHON_INSTALL_DIR"):
        return Path(env_dir)
    try:
        # The user's own uv settings apply here: they say where their Pythons are.
        answer = run([uv_binary(), "python", "dir"], what="uv python dir").stdout.strip()
    except (ImportError, FileNotFoundError, ToolError):
        return None
    return Path(answer) if answer else None


def from_versions_folder(
    folder: Path, pattern: re.Pattern[str], found_by: str
) -> Iterator[LocalInterpreter]:
    """Interpreters in a folder of prefixes named after their version (pyenv, uv)."""
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        match = pattern.match(entry.name)
        if not match:
            continue
        major, minor, micro = match.groups()
        python = entry / "bin" / f"python{major}.{minor}"
        if python.is_file():
            yield LocalInterpreter(f"{major}.{minor}.{micro}", python, found_by)


def from_path(
    feature_version: str | None, *, skip: Path | None = None
) -> Iterator[LocalInterpreter]:
    """``python3.X`` commands on PATH; each is run to learn its exact version.

    pyenv shims of inactive versions fail when run, which is why the pyenv finder reads
    pyenv's versions folder instead; the shims folder (``skip``) is not run at all, since
    everything a shim can reach is already in that versions folder.
    """
    probed: set[str] = set()
    seen: set[str] = set()
    skipped = os.path.realpath(skip) if skip is not None else None
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder) or os.path.realpath(folder) == skipped:
            continue
        for name in sorted(os.listdir(folder)):
            match = _PATH_NAME.match(name)
            if not match or (feature_version and f"3.{match[1]}" != feature_version):
                continue
            command = Path(folder) / name
            real_command = os.path.realpath(command)
            if real_command in probed or not os.access(command, os.X_OK):
                continue
            probed.add(real_command)
            if os.path.dirname(real_command) in _SYSTEM_BIN_DIRS:
                continue
            try:
                facts = probe(command, what=f"PATH {name}")
            except RuntimeProviderError:
                continue
            if facts.implementation != "cpython" or facts.base_prefix in _SYSTEM_PREFIXES:
                continue
            executable = Path(facts.base_prefix) / "bin" / name
            real = os.path.realpath(executable)
            if real in seen or not executable.is_file():
                continue
            seen.add(real)
            yield LocalInterpreter(facts.version, executable, "PATH")


def discover(feature_version: str | None = None) -> list[LocalInterpreter]:
    """Every usable local CPython, in preference order: pyenv, uv-managed, PATH.

    The same installation found twice (a PATH entry that is a pyenv shim) is listed once,
    under the earlier finder.
    """
    found: list[LocalInterpreter] = []
    seen: set[str] = set()
    pyenv = pyenv_root()
    sources: list[Iterator[LocalInterpreter]] = [
        from_versions_folder(pyenv / "versions", _PYENV_VERSION, "pyenv"),
    ]
    uv_dir = uv_python_dir()
    if uv_dir is not None:
        sources.append(from_versions_folder(uv_dir, _UV_VERSION, "uv"))
    sources.append(from_path(feature_version, skip=pyenv / "shims"))
    for source in sources:
        for interpreter in source:
            if feature_version and not interpreter.version.startswith(f"{feature_version}."):
                continue
            real = os.path.realpath(interpreter.executable)
            if real not in seen:
                seen.add(real)
                found.append(interpreter)
    return found


def interpreter_for(feature_version: str) -> Path | None:
    """The newest local interpreter of ``X.Y``, or None (the running one when it fits)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == feature_version:
        return Path(sys.executable)
    where = tuple(os.environ.get(k, "") for k in ("PATH", "PYENV_ROOT", "UV_PYTHON_INSTALL_DIR"))
    return _interpreter_for(feature_version, where)


@functools.lru_cache(maxsize=16)
def _interpreter_for(feature_version: str, _where: tuple[str, ...]) -> Path | None:
    # Keyed on where discovery looks, so a changed PATH or PYENV_ROOT is looked at again.
    found = discover(feature_version)
    best = max(found, key=lambda i: version_key(i.version), default=None)
    return best.executable if best is not None else None


def explicit(path: str) -> LocalInterpreter:
    """The interpreter a user named (``source_path``): run it to learn what it is."""
    python = Path(path).expanduser()
    if python.is_dir():
        # A prefix folder: take its versioned interpreter.
        candidates = sorted(python.glob("bin/python3.*[0-9]"))
        if not candidates:
            raise RuntimeProviderError(f"source_path {path}: no bin/python3.X in that folder")
        python = candidates[-1]
    if not python.exists():
        raise RuntimeProviderError(f"source_path {path}: no such interpreter")
    facts = probe(python, what=f"source_path {path}")
    if facts.implementation != "cpython":
        raise RuntimeProviderError(
            f"source_path {path}: is {facts.implementation}; local relocation handles CPython only"
        )
    feature = ".".join(facts.version.split(".")[:2])
    executable = Path(facts.base_prefix) / "bin" / f"python{feature}"
    if not executable.is_file():
        executable = Path(facts.executable)
    return LocalInterpreter(facts.version, executable, "explicit path")
