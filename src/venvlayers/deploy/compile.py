"""Byte-compile deployed layers in the background while the next layers unpack.

postinstall.py can compile a layer itself, but that serialises compiling with unpacking.
Here each layer starts compiling as soon as it is in place, so on a multi-core host the
CPU-bound compile of the runtime's library overlaps with unpacking the layers above it.
Bytecode is only a cache: a deploy interrupted while compiling leaves every layer working
(the next deploy unpacks such a layer again, so that its file record covers the bytecode).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from venvlayers._proc import spawn
from venvlayers.contract.layer_files import BYTECODE_SKIP
from venvlayers.contract.layer_metadata import read_layer_metadata, resolve_inside


class BackgroundCompiler:
    """Compiles layers in background processes; :meth:`wait` lets them all finish."""

    def __init__(
        self,
        target: Path,
        *,
        enabled: bool,
        on_done: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.target = target
        self.enabled = enabled
        # Told (layer, finished, started) as each layer finishes, for a progress display.
        self._on_done = on_done
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str) -> None:
        """Start compiling the layer ``name`` (already in its final place)."""
        if not self.enabled:
            return
        layer_dir = self.target / name
        meta = read_layer_metadata(layer_dir, name)
        python = resolve_inside(
            layer_dir, meta.base_python, self.target, what=f"{name}: base_python"
        )
        # One process per layer, each with compileall's pool on every core: layers compile
        # side by side and beside unpacking, and the biggest layer, which is usually the
        # last still compiling when unpacking ends, uses every core (the torch layer: 8.4 s
        # alone, 5.6 s with the pool, on 2 cores). Failures are not errors (packages ship
        # deliberately broken .py files as test data).
        process = spawn(
            [
                python,
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "-x",
                BYTECODE_SKIP,
                layer_dir / meta.compile_dir,
            ],
            what=f"{name}: byte-compile",
        )
        self._running.append((name, process))

    def wait(self) -> None:
        for done, (name, process) in enumerate(self._running, start=1):
            process.wait()
            if self._on_done is not None:
                self._on_done(name, done, len(self._running))
        self._running.clear()

    def stop(self) -> None:
        """Abandon compiling (the deploy failed); bytecode is only a cache."""
        for _name, process in self._running:
            process.kill()
        self._on_done = None
        self.wait()
