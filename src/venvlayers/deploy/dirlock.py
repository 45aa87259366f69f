"""One writer at a time per deployment folder: an exclusive lock on ``DIR/.venvlayers/lock``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from venvlayers._fs import exclusive_lock
from venvlayers.deploy.record import STATE_DIR

LOCK_NAME = "lock"
LOCK_FILE = f"{STATE_DIR}/{LOCK_NAME}"


@contextlib.contextmanager
def target_lock(target: Path, report: Callable[[str], None]) -> Iterator[None]:
    """Hold the lock of ``target``; says so through ``report`` when it has to wait."""
    with exclusive_lock(
        target / LOCK_FILE, on_wait=lambda: report(f"waiting for another deploy into {target}")
    ):
        yield
