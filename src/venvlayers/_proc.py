"""The one place subprocesses run: logs the command line, quotes failures."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from venvlayers.errors import ToolError

log = logging.getLogger("venvlayers.proc")

# The last lines of a failing tool's output carry its own explanation; more is noise.
_QUOTED_TAIL_LINES = 25


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; on failure raise :class:`ToolError` naming ``what`` and quoting the tool.

    ``what`` is a short description of the step for the error message,
    e.g. ``"framework-sklearn: uv pip compile"``.
    """
    argv = [os.fspath(a) for a in args]
    log.debug("run: %s", shlex.join(argv))
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            capture_output=capture,
            input=input,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ToolError(f"{what}: cannot run {argv[0]!r}: {exc.strerror}") from exc
    if check and result.returncode != 0:
        raise ToolError(f"{what} failed (exit {result.returncode}):\n{tool_message(result)}")
    return result


def spawn(args: Sequence[str | os.PathLike[str]], *, what: str) -> subprocess.Popen[bytes]:
    """Start ``args`` in the background with its output discarded; the caller waits for it
    or stops it with :func:`kill_all`.

    It runs in a process group of its own, so that stopping it stops the workers it
    started too (a process pool's workers outlive a parent killed alone, forever idle).
    """
    argv = [os.fspath(a) for a in args]
    log.debug("start (%s): %s", what, shlex.join(argv))
    try:
        return subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=os.name == "posix",
        )
    except OSError as exc:
        raise ToolError(f"{what}: cannot run {argv[0]!r}: {exc.strerror}") from exc


def kill_all(process: subprocess.Popen[bytes]) -> None:
    """Kill a process started by :func:`spawn`, and every process it started."""
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def tool_message(result: subprocess.CompletedProcess[str]) -> str:
    """The tail of a tool's combined output, indented for quoting in an error."""
    text = "\n".join(part for part in (result.stderr or "", result.stdout or "") if part.strip())
    lines = [line for line in text.strip().splitlines() if line.strip()]
    tail = lines[-_QUOTED_TAIL_LINES:]
    return "\n".join(f"  {line}" for line in tail) if tail else "  (no output)"
