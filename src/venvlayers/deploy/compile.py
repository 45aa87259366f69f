"""Byte-compile newly deployed layers in one pass, once they are all in place.

postinstall.py can compile each layer itself, but one compileall run per runtime keeps
both cores busy across layers instead of starting a worker pool per layer. Bytecode is
only a cache: a deploy interrupted here leaves every layer working, just slower to start.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from venvlayers._proc import run
from venvlayers.deploy.layermeta import DeployedLayerMeta, resolve_inside

NO_COMPILE_ENV = "VENVLAYERS_NO_COMPILE"


def compile_disabled() -> bool:
    return os.environ.get(NO_COMPILE_ENV, "") not in ("", "0")


def compile_layers(target: Path, install_targets: Sequence[str]) -> None:
    """Compile the given deployed layers, grouped by the runtime python that runs them."""
    groups: dict[Path, list[Path]] = {}
    for name in install_targets:
        layer_dir = target / name
        meta = DeployedLayerMeta.read(layer_dir, name)
        python = resolve_inside(layer_dir, meta.base_python, target, what=f"{name}: base_python")
        groups.setdefault(python, []).append(layer_dir / meta.compile_dir)
    for python, folders in groups.items():
        # -j 0: one worker per core; -q: only errors, which compileall does not fail on
        # for files that are not meant to compile (test data shipped in packages).
        run(
            [python, "-m", "compileall", "-q", "-j", "0", *folders],
            what=f"byte-compile {', '.join(f.parent.name for f in folders)}",
            check=False,
        )
