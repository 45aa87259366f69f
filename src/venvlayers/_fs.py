"""Atomic file and folder writes: a failed command leaves the previous state in place."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates 0600 files; keep an existing file's mode, else the usual 0644.
        if mode is None:
            mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
        tmp.chmod(mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as stable, human-readable JSON (sorted keys, trailing newline)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` (readable by all, as committed files are) only when it differs, so
    unchanged inputs leave files untouched; True when written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    atomic_write_text(path, text, mode=0o644)
    return True


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return json.load(stream)


@contextlib.contextmanager
def staged_dir(final: Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``final``; on success it becomes ``final``.

    On failure the temporary folder is removed and ``final`` is untouched. With
    ``keep_existing``, a ``final`` that another process finished first is kept and this
    one dropped (for shared caches, where either copy is as good).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        if not keep_existing:
            replace_dir(tmp, final)
        elif not final.exists():
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.exists():
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(new: Path, final: Path) -> None:
    """Move ``new`` into place at ``final``, removing any old folder only afterwards."""
    old: Path | None = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """The hex sha256 of the file at ``path``, read in blocks (never whole in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_bytes(data: bytes) -> str:
    """``sha256:<hex>``, the form every recorded hash takes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hash_json(data: Any) -> str:
    """The hash of ``data`` as compact, key-sorted JSON: the same data, the same hash."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hash_bytes(text.encode("utf-8"))


@contextlib.contextmanager
def exclusive_lock(path: Path, *, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) while in the block.

    The lock belongs to the open file, so the system releases it when its holder exits,
    even by ``kill -9``: a stale lock never blocks the next run. ``on_wait`` is called once
    when another process holds it.
    """
    waited = False
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                if not waited:
                    on_wait()
                    waited = True
                _lock(fd)
            # The holder may have removed the file with its folder (a deploy that created
            # the folder and was refused): a lock on a file no longer at ``path`` locks
            # nothing, so take the one now there.
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_leftovers(folder: Path, pattern: str) -> list[Path]:
    """Remove what killed runs left in ``folder`` (files or folders matching ``pattern``).

    Call it only while holding the lock that serialises the writers of ``folder``.
    """
    removed = []
    for leftover in folder.glob(pattern):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


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
