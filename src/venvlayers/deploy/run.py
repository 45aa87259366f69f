"""Run a deployed app (``<app_python> -m <launch_module> ARGS``) or a layer's python."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from venvlayers._proc import run
from venvlayers.contract.layer_metadata import read_layer_metadata, resolve_inside
from venvlayers.deploy.record import DeployedApp, load_record
from venvlayers.errors import DeployError

log = logging.getLogger("venvlayers.run")


def command_for(target: Path, name: str, args: Sequence[str]) -> list[str]:
    """The command line that runs ``name`` (an app, or a runtime/framework layer) in ``target``."""
    target = Path(os.path.abspath(target))
    found = load_record(target, required=True).resolve(name, target)
    layer_dir = target / found.install_target
    meta = read_layer_metadata(layer_dir, found.install_target)
    if isinstance(found, DeployedApp):
        if meta.launch_module is None:
            raise DeployError(f"{found.install_target}: its metadata names no launch_module")
        python = _interpreter(
            layer_dir, meta.app_python or meta.python, target, found.install_target
        )
        return [os.fspath(python), "-m", meta.launch_module, *args]
    python = _interpreter(layer_dir, meta.python, target, found.install_target)
    return [os.fspath(python), *args]


def run_app(target: Path, name: str, args: Sequence[str]) -> int:
    """Run ``name`` in the foreground (stdin/stdout inherited); returns its exit status.

    A child killed by a signal gives ``128 + signal``, as a shell reports it.
    """
    command = command_for(target, name, args)
    with _interrupts_go_to_child():
        result = run(command, what=name, capture=False, check=False)
    return result.returncode if result.returncode >= 0 else 128 - result.returncode


# How long a stopped app gets to exit after SIGTERM before it is killed.
_STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class SmokeRun:
    """How a smoke run of an app ended: it exited with ``status``, or it was still running
    after the time limit (a service, usually) and was stopped."""

    name: str
    status: int | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status in (0, None)


def smoke_run(
    target: Path, name: str, *, time_limit: float, output_to_stderr: bool = False
) -> SmokeRun:
    """Run ``name`` with no arguments and no input, for at most ``time_limit`` seconds.

    The app runs in a session of its own, so that stopping it (SIGTERM, then SIGKILL after
    a grace period) reaches every process it started, and a Ctrl-C at the terminal reaches
    only venvlayers, which then stops the app before it reports the interruption.
    ``output_to_stderr``: the app's stdout goes to stderr (stdout carries a JSON result).
    """
    command = command_for(target, name, [])
    log.debug("run (%s): %s", name, shlex.join(command))
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr.fileno() if output_to_stderr else None,
        start_new_session=True,
    )
    try:
        status: int | None = process.wait(timeout=time_limit)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        # Reached with the app still running on a timeout and on KeyboardInterrupt alike.
        _stop_session(process)
    seconds = time.monotonic() - started
    if status is not None and status < 0:
        status = 128 - status
    return SmokeRun(name, status, seconds)


def _stop_session(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, _STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _interpreter(layer_dir: Path, relative: str, target: Path, name: str) -> Path:
    python = resolve_inside(layer_dir, relative, target, what=name)
    if not os.path.exists(python):
        raise DeployError(
            f"{name}: {python} is missing; run `venvlayers verify {target}` and deploy again"
        )
    return python


@contextlib.contextmanager
def _interrupts_go_to_child() -> Iterator[None]:
    """Ctrl-C reaches the child (same process group); this process must outlive it.

    A Python-level handler, unlike SIG_IGN, is reset to the default by ``exec``, so the
    child still gets its own KeyboardInterrupt (a REPL stays usable).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ignore(_signum: int, _frame: FrameType | None) -> None:
        pass

    previous = signal.signal(signal.SIGINT, ignore)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
