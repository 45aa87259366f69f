"""Run a layer's postinstall.py the way a target needs it: with its runtime, in a clean env."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from venvlayers._proc import run
from venvlayers.contract.layer_metadata import read_layer_metadata, resolve_inside
from venvlayers.errors import DeployError

# Read by postinstall.py (and the deploy stage's own compiler): skip byte-compiling.
NO_COMPILE_ENV = "VENVLAYERS_NO_COMPILE"
# Settings of the calling environment that would make the runtime's python look elsewhere.
_FOREIGN_PYTHON_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "VIRTUAL_ENV")


def run_postinstall(
    layer_dir: Path,
    name: str,
    root: Path,
    *,
    compile_bytecode: bool,
    report: Callable[[str], None] = lambda _m: None,
) -> None:
    """Run ``layer_dir``'s postinstall.py with its base runtime's python (already in place).

    Every path in the layer's metadata must stay inside ``root``, the folder the layers sit
    in side by side. Raises :class:`DeployError` for a bad layer and
    :class:`~venvlayers.errors.ToolError` (quoting the script) when the script fails.
    """
    meta = read_layer_metadata(layer_dir, name)
    script = resolve_inside(layer_dir, meta.postinstall_script, layer_dir, what=name)
    if not script.is_file():
        return
    python = resolve_inside(layer_dir, meta.base_python, root, what=f"{name}: base_python")
    if not python.is_file():
        raise DeployError(f"{name}: its runtime python {python} is missing")
    report(f"{name}: running {meta.postinstall_script}")
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_PYTHON_ENV}
    if not compile_bytecode:
        env[NO_COMPILE_ENV] = "1"
    run([python, script], what=f"{name}: {meta.postinstall_script}", env=env)
