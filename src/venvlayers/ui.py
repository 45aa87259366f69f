"""Console output: messages on stderr, results on stdout, progress bars on a terminal.

rich is imported on first use only, so commands that print little (`run`) start fast.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class Settings:
    verbosity: int = 0  # -1 quiet, 0 normal, 1 -v, 2 -vv
    debug: bool = False

    @property
    def tracebacks(self) -> bool:
        return self.debug or self.verbosity >= 2


settings = Settings()


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


def info(message: str) -> None:
    """A progress note for people; silenced by ``-q``."""
    if settings.verbosity >= 0:
        stderr().print(message, markup=False)


def warn(message: str) -> None:
    stderr().print(f"warning: {message}", style="yellow", markup=False)


def error(message: str) -> None:
    stderr().print(f"error: {message}", style="bold red", markup=False)


def result(text: str) -> None:
    """Output that is the command's result: always printed, on stdout."""
    stdout().print(text, markup=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def print_exception() -> None:
    stderr().print_exception()


def progress_enabled() -> bool:
    return settings.verbosity >= 0 and sys.stderr.isatty()
