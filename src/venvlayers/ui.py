"""Console output: messages on stderr, results on stdout, progress bars on a terminal.

rich is imported on first use only, so commands that print little (`run`) start fast.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class Settings:
    verbosity: int = 0  # -1 quiet, 0 normal, 1 -v, 2 -vv
    debug: bool = False
    # --json: the result is one JSON document on stdout; text for people goes to stderr.
    json: bool = False
    # --no-progress turns bars off even on a terminal.
    progress: bool = True
    # -v and -q as counted so far: they may come before and after the subcommand.
    verbose_count: int = 0
    quiet: bool = False

    @property
    def tracebacks(self) -> bool:
        return self.debug or self.verbosity >= 2


settings = Settings()
# Where progress notes go while a live progress display is up (see cli_progress.py).
_live_sink: Callable[[str], None] | None = None


@functools.cache
def stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@functools.cache
def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def configure(verbosity: int, *, debug: bool = False) -> None:
    settings.verbosity = verbosity
    settings.debug = debug
    if verbosity <= 0 and not debug:
        logging.basicConfig(level=logging.WARNING, format="%(message)s", force=True)
        return
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbosity == 1 and not debug else logging.DEBUG,
        format="%(message)s",
        handlers=[RichHandler(console=stderr(), show_time=False, show_path=False)],
        force=True,
    )


def reconfigure() -> None:
    """Apply -v/-q/--debug as counted so far (called again for options after the command)."""
    configure(-1 if settings.quiet else settings.verbose_count, debug=settings.debug)


def set_live_sink(sink: Callable[[str], None] | None) -> None:
    global _live_sink
    _live_sink = sink


def info(message: str) -> None:
    """A progress note for people; silenced by ``-q``; shown in the live display if one is up."""
    if settings.verbosity < 0:
        return
    if _live_sink is not None:
        _live_sink(message)
        if settings.verbosity < 1:
            return
    stderr().print(message, markup=False)


def warn(message: str) -> None:
    if settings.verbosity >= 0:
        stderr().print(f"warning: {message}", style="yellow", markup=False)


def error(message: str) -> None:
    stderr().print(f"error: {message}", style="bold red", markup=False)


def result(text: str) -> None:
    """Output that is the command's result: always printed, on stdout (on stderr when the
    result on stdout is the JSON document)."""
    (stderr() if settings.json else stdout()).print(text, markup=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def print_exception() -> None:
    stderr().print_exception()


def progress_enabled() -> bool:
    return (
        settings.verbosity >= 0 and settings.progress and not settings.json and sys.stderr.isatty()
    )


def size(count: int) -> str:
    """A byte count for people, in one style: ``512 B``, ``13 KiB``, ``41.5 MiB``, ``2.1 GiB``."""
    if count < 1024:
        return f"{count} B"
    if count < 1024**2:
        return f"{count // 1024} KiB"
    if count < 1024**3:
        return f"{count / 1024**2:.1f} MiB"
    return f"{count / 1024**3:.1f} GiB"
