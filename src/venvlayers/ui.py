"""Console output: messages on stderr, results on stdout, progress bars on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Settings:
    verbosity: int = 0  # -1 quiet, 0 normal, 1 -v, 2 -vv
    debug: bool = False

    @property
    def tracebacks(self) -> bool:
        return self.debug or self.verbosity >= 2


settings = Settings()


def configure(verbosity: int, *, debug: bool = False) -> None:
    settings.verbosity = verbosity
    settings.debug = debug
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2 or debug:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_time=False, show_path=False)],
        force=True,
    )


def info(message: str) -> None:
    """A progress note for people; silenced by ``-q``."""
    if settings.verbosity >= 0:
        stderr.print(message, markup=False)


def warn(message: str) -> None:
    stderr.print(f"warning: {message}", style="yellow", markup=False)


def error(message: str) -> None:
    stderr.print(f"error: {message}", style="bold red", markup=False)


def result(text: str) -> None:
    """Output that is the command's result: always printed, on stdout."""
    stdout.print(text, markup=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def progress_enabled() -> bool:
    return settings.verbosity >= 0 and stderr.is_terminal
