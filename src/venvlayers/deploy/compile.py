"""Byte-compile deployed layers in the background while the next layers unpack.

postinstall.py can compile a layer itself, but that serialises compiling with unpacking.
Here each layer starts compiling as soon as it is in place, so on a multi-core host the
CPU-bound compile of the runtime's library overlaps with unpacking the layers above it. A
venv layer starts earlier still, while it unpacks (:class:`EarlyCompiler`); once placed,
only what that did not reach is compiled. Bytecode is only a cache: a deploy interrupted while compiling leaves every layer working
(the next deploy unpacks such a layer again, so that its file record covers the bytecode).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from venvlayers._proc import kill_all, spawn
from venvlayers.contract.layer_files import BYTECODE_SKIP
from venvlayers.contract.layer_metadata import read_layer_metadata, resolve_inside

_SKIPPED = re.compile(BYTECODE_SKIP)


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
        self._scratch: list[Path] = []

    def start(self, name: str, sources: list[str] | None = None) -> None:
        """Start compiling the layer ``name`` (already in its final place): its whole
        library, or only ``sources`` (layer-relative) when the others are compiled."""
        if not self.enabled or sources == []:
            return
        layer_dir = self.target / name
        meta = read_layer_metadata(layer_dir, name)
        python = resolve_inside(
            layer_dir, meta.base_python, self.target, what=f"{name}: base_python"
        )
        if sources is not None:
            # No walk of the library and no look at the bytecode made while unpacking.
            scratch = Path(tempfile.mkdtemp(prefix="venvlayers-compile-"))
            self._scratch.append(scratch)
            (scratch / "compile_listed.py").write_text(_LISTED, encoding="utf-8")
            listed = b"\0".join(os.fsencode(layer_dir / relative) for relative in sources)
            (scratch / "sources").write_bytes(listed)
            process = spawn(
                [python, "-s", scratch / "compile_listed.py", scratch / "sources"],
                what=f"{name}: byte-compile",
            )
            self._running.append((name, process))
            return
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
        for scratch in self._scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        self._scratch.clear()

    def stop(self) -> None:
        """Abandon compiling (the deploy failed); bytecode is only a cache."""
        for _name, process in self._running:
            kill_all(process)
        self._on_done = None
        self.wait()


# Run by the runtime's interpreter (any CPython 3.9+): compiles the NUL-separated paths
# read from stdin, one after the other, until stdin ends or the file named by its argument
# exists, and lists each source compiled and the bytecode file written for it. py_compile
# writes each .pyc whole and renames it into place, so stopping between two files leaves
# nothing half written.
_EARLY = r"""
import os, py_compile, sys

stop, pending = sys.argv[1], b""
with open(sys.argv[2], "wb") as done:
    while not os.path.exists(stop):
        data = os.read(0, 1 << 16)
        if not data:
            break
        *paths, pending = (pending + data).split(b"\0")
        for path in paths:
            if os.path.exists(stop):
                break
            try:
                written = py_compile.compile(os.fsdecode(path), doraise=True)
            except Exception:
                continue
            done.write(path + b"\0" + os.fsencode(written) + b"\0")
"""
# Run by the layer's interpreter: compiles the NUL-separated paths listed in a file, on
# every core.
_LISTED = r"""
import os, py_compile, sys
from concurrent.futures import ProcessPoolExecutor


def compile_one(path):
    try:
        py_compile.compile(path, doraise=True)
    except Exception:
        pass


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as listed:
        paths = [os.fsdecode(p) for p in listed.read().split(b"\0") if p]
    with ProcessPoolExecutor() as pool:
        for _done in pool.map(compile_one, paths, chunksize=8):
            pass
"""
_SITE_PACKAGES = re.compile(r"(^|/)(lib/python[^/]*|Lib)/site-packages/")


class EarlyCompiler:
    """Compiles a venv layer's sources while the layer is still being unpacked.

    Unpacking waits on the disk much of the time; compiling the files already written
    (in the partial folder, with the runtime's interpreter once that is in place) uses
    that time. :meth:`stop` is called before the folder is described: what was compiled
    by then is recorded with the layer's bytecode, and the placed layer compiles only
    :meth:`remaining` (:class:`BackgroundCompiler` with ``sources``). CPython corrects the
    file names inside the bytecode when it imports it.
    """

    def __init__(self, partial: Path, python: Callable[[], Path | None]) -> None:
        self._partial = partial
        # The interpreter to compile with, once it is in place (None until then).
        self._python = python
        self._paths: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        name = f"venvlayers-compile-{secrets.token_hex(8)}"
        self._stop_file = Path(tempfile.gettempdir()) / f"{name}.stop"
        self._done_file = Path(tempfile.gettempdir()) / f"{name}.done"
        # The layer's sources to compile, by layer-relative path, and those compiled.
        self.sources: list[str] = []
        self.compiled: set[str] = set()
        # The bytecode files written, by absolute path.
        self._written: list[str] = []
        # Whether it gave way to the layer's own bytecode (see :meth:`abandon`).
        self.abandoned = False
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._feed, name="venvlayers-compile", daemon=True)
        self._thread.start()

    def written(self, relative: str) -> None:
        """A file of the layer is complete (called from the writer threads)."""
        if is_early_source(relative) and not self._stop.is_set():
            self.sources.append(relative)
            self._paths.put(os.path.join(self._partial, relative))

    def _feed(self) -> None:
        python = None
        while python is None:
            if self._stop.wait(0.1):
                return
            python = self._python()
        try:
            self._process = subprocess.Popen(
                [python, "-s", "-c", _EARLY, self._stop_file, self._done_file],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return  # compiling after placing does it all
        assert self._process.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            while (path := self._paths.get()) is not None and not self._stop.is_set():
                self._process.stdin.write(os.fsencode(path) + b"\0")
                self._process.stdin.flush()

    def stop(self) -> None:
        """Stop compiling (after the file being compiled) and wait for the process."""
        self._stop.set()
        self._stop_file.touch()
        try:
            self._paths.put(None)
            self._thread.join()
            if self._process is not None:
                assert self._process.stdin is not None
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
                self._process.wait()
                prefix = os.fsencode(os.path.join(self._partial, ""))
                with contextlib.suppress(OSError):
                    listed = self._done_file.read_bytes().split(b"\0")
                    pairs = list(zip(listed[0::2], listed[1::2], strict=False))
                    self.compiled = {
                        os.fsdecode(source.removeprefix(prefix)) for source, _pyc in pairs
                    }
                    self._written = [os.fsdecode(pyc) for _source, pyc in pairs if pyc]
        finally:
            self._stop_file.unlink(missing_ok=True)
            self._done_file.unlink(missing_ok=True)

    def abandon(self) -> None:
        """Stop, and delete the bytecode written: the layer brings bytecode of its own,
        which must be unpacked as it is (compiling it again after placing the layer keeps
        whatever is up to date)."""
        self.stop()
        self.abandoned = True
        for path in self._written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.compiled = set()

    def remaining(self) -> list[str]:
        """The sources it did not compile (call after :meth:`stop`)."""
        return [relative for relative in self.sources if relative not in self.compiled]


def is_early_source(relative: str) -> bool:
    """Whether :class:`EarlyCompiler` compiles this layer-relative path of a venv layer."""
    return (
        relative.endswith(".py")
        and _SITE_PACKAGES.search(relative) is not None
        and not _SKIPPED.search("/" + relative)
    )
