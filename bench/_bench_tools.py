"""The two tools under test, installed into the work folder when a clean clone lacks them."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from _bench_proc import output_of, run_logged

VENVSTACKS_REQUIREMENT = "venvstacks==0.8.0b2"
# The versions venvstacks 0.8 was released and tested with, kept in the project so that a
# clone anywhere (CI's included) runs the comparison and the compatibility tests.
CONSTRAINTS = Path("bench", "venvstacks-0.8-constraints.txt")


@dataclass(frozen=True)
class Tools:
    uv: Path
    venvlayers: tuple[str, ...]  # command prefix
    venvlayers_python: Path
    venvstacks_python: Path


def _venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def find_uv(repo: Path, work: Path, log: Path) -> Path:
    """uv from the project's dev venv, else PATH, else a copy installed into the work folder."""
    for candidate in (_venv_bin(repo / ".venv", "uv"), shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    tools = work / "tools-venv"
    uv = _venv_bin(tools, "uv")
    if not uv.is_file():
        run_logged([sys.executable, "-m", "venv", tools], log=log, what="create tools venv")
        run_logged(
            [_venv_bin(tools, "python"), "-m", "pip", "install", "--quiet", "uv"],
            log=log,
            what="install uv",
        )
    return uv


def venvlayers_tool(repo: Path, work: Path, uv: Path, log: Path) -> tuple[tuple[str, ...], Path]:
    """The venvlayers command and its Python: the dev venv's, else this clone installed."""
    dev = repo / ".venv"
    if _venv_bin(dev, "venvlayers").is_file():
        return (str(_venv_bin(dev, "venvlayers")),), _venv_bin(dev, "python")
    venv = work / "venvlayers-venv"
    if not _venv_bin(venv, "venvlayers").is_file():
        run_logged(
            [uv, "venv", "--quiet", "--python", sys.executable, venv],
            log=log,
            what="create venvlayers venv",
        )
        run_logged(
            [uv, "pip", "install", "--quiet", "--python", _venv_bin(venv, "python"), repo],
            log=log,
            what="install venvlayers from this clone",
        )
    return (str(_venv_bin(venv, "venvlayers")),), _venv_bin(venv, "python")


def venvstacks_tool(repo: Path, work: Path, uv: Path, log: Path) -> Path:
    """A venv in the work folder with venvstacks 0.8.0b2 and the versions it was tested with."""
    constraints = (repo / CONSTRAINTS).resolve()
    if not constraints.is_file():
        raise SystemExit(f"{constraints}: missing; it pins the versions venvstacks 0.8 runs with")
    venv = work / "venvstacks-venv"
    python = _venv_bin(venv, "python")
    wanted = VENVSTACKS_REQUIREMENT.partition("==")[2]
    if output_of([python, "-c", _VERSION_OF.format("venvstacks")]) == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    run_logged(
        [uv, "venv", "--quiet", "--python", sys.executable, venv],
        log=log,
        what="create venvstacks venv",
    )
    run_logged(
        [uv, "pip", "install", "--quiet", "--python", python, VENVSTACKS_REQUIREMENT,
         "--constraint", constraints],
        log=log,
        what=f"install {VENVSTACKS_REQUIREMENT}",
    )  # fmt: skip
    return python


_VERSION_OF = "import importlib.metadata as m; print(m.version({!r}))"


def machine_facts(tools: Tools, runtime_version: str) -> dict[str, str]:
    """What a reader needs to compare these figures with their own machine."""
    cpu = "?"
    ram = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu,
        "cores": str(os.cpu_count() or "?"),
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python (stack runtime)": f"CPython {runtime_version}, local relocatable copy",
        "venvlayers": output_of([*tools.venvlayers, "--version"]),
        "uv (venvlayers)": output_of([tools.venvlayers_python, "-m", "uv", "--version"]),
        "venvstacks": output_of([tools.venvstacks_python, "-c", _VERSION_OF.format("venvstacks")]),
        "uv (venvstacks)": output_of([tools.venvstacks_python, "-m", "uv", "--version"]),
    }
