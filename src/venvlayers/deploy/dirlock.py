"""One writer at a time per deployment folder: an exclusive lock on ``DIR/.venvlayers/lock``.

The lock is tied to the open file, so the system releases it when its holder exits, even by
``kill -9``: a stale lock cannot block the next deploy.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from venvlayers.deploy.record import STATE_DIR

LOCK_FILE = f"{STATE_DIR}/lock"


@contextlib.contextmanager
def target_lock(target: Path, report: Callable[[str], None]) -> Iterator[None]:
    """Hold the lock of ``target``; says so through ``report`` when it has to wait."""
    path = target / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            report(f"waiting for another deploy into {target}")
            _lock(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


if sys.platform == "win32":
    import msvcrt
    import time

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _lock(fd: int) -> None:
        while not _try_lock(fd):
            time.sleep(0.2)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
