"""Timed subprocesses whose output goes to a log file, and failures that quote that log."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_TAIL_LINES = 25


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds, and CPU seconds (user + system) of the command and its children.

    CPU time shows how much work a step does even when other processes share the machine,
    which wall-clock time alone hides.
    """

    wall: float
    cpu: float

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)


class _Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.cpu_before = self._children_cpu()

    @staticmethod
    def _children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def stop(self) -> Timing:
        return Timing(time.perf_counter() - self.started, self._children_cpu() - self.cpu_before)


class StepFailed(Exception):
    """A benchmarked command failed; the message names it and quotes the end of its log."""


def tail(log: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_logged(
    args: Sequence[str | Path],
    *,
    log: Path,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Timing:
    """Run ``args``, appending its output to ``log``; the time it took."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(str(a) for a in args)}\n")
        out.flush()
        stopwatch = _Stopwatch()
        try:
            completed = subprocess.run(
                [str(a) for a in args], stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd
            )
        except OSError as exc:
            raise StepFailed(f"{what}: cannot run {args[0]}: {exc}") from exc
        elapsed = stopwatch.stop()
    if completed.returncode != 0:
        raise StepFailed(f"{what}: exit status {completed.returncode} (log: {log})\n{tail(log)}")
    return elapsed


def run_captured(
    args: Sequence[str | Path],
    *,
    log: Path,
    what: str,
    env: Mapping[str, str] | None = None,
) -> tuple[Timing, str]:
    """Like :func:`run_logged`, and also return what the command printed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    stopwatch = _Stopwatch()
    try:
        completed = subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
    except OSError as exc:
        raise StepFailed(f"{what}: cannot run {args[0]}: {exc}") from exc
    elapsed = stopwatch.stop()
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(str(a) for a in args)}\n{completed.stdout}{completed.stderr}")
    if completed.returncode != 0:
        raise StepFailed(f"{what}: exit status {completed.returncode} (log: {log})\n{tail(log)}")
    return elapsed, completed.stdout


def output_of(args: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> str:
    """The stripped stdout of a short query command, or ``"?"`` when it cannot run."""
    try:
        completed = subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return completed.stdout.strip()
