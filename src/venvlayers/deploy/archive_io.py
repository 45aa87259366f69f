"""What every archive reader shares: bounds, hashing streams, the scan and its refusals."""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import queue
import shutil
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zstandard

from venvlayers.deploy.members import (
    Member,
    UnsafeMember,
    layer_relative,
)

_CHUNK = 1 << 20
# Headers read before one tar member (pax records, GNU long names), at most: a header is
# held in memory, so a header claiming gigabytes would exhaust memory before any check.
HEADER_ALLOWANCE = 1 << 20
# The longest symlink target a file system accepts (PATH_MAX).
MAX_LINK_TEXT = 4096
# Members a scan keeps in memory (a layer's manifest, a delta's descriptor): at most this
# much in all, so a hostile archive cannot make the check hold gigabytes.
_CAPTURE_ALLOWANCE = 64 << 20
_CHANGED = "changed while it was being unpacked"
# Errors a damaged archive raises from the decompressors and readers.
_CORRUPT = (
    tarfile.TarError,
    zstandard.ZstdError,
    lzma.LZMAError,
    zlib.error,
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,
    struct.error,
)


# Member data as it is handed on: views of the decompressed chunks where that saves a copy.
Data = bytes | memoryview


class ArchiveRefused(Exception):
    """The archive is damaged or unsafe; ``str()`` is the reason, for one line of output."""


class _HashMismatch(ArchiveRefused):
    def __init__(self) -> None:
        super().__init__("does not match its published sha256")


def free_space(folder: Path) -> int:
    """Bytes still free on the file system that holds (or will hold) ``folder``."""
    path = Path(os.path.abspath(folder))
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _too_big(space: int) -> str:
    return f"expands to more than the {space} bytes free in the deployment folder"


class SpaceBudget:
    """The bytes archives may still expand to, shared by the archives unpacked side by side."""

    def __init__(self, space: int) -> None:
        self.space = space
        self._used = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> None:
        """Count ``count`` more bytes; refuses (:class:`ArchiveRefused`) past the space,
        without counting them: the archive refused is the one that went past, not another
        unpacked beside it."""
        with self._lock:
            if self._used + count > self.space:
                raise ArchiveRefused(_too_big(self.space))
            self._used += count

    @property
    def used(self) -> int:
        return self._used


class _HashingReader:
    """Reads and hashes exactly ``size`` bytes of an open archive, from where it stands."""

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self._raw = raw
        self._left = size
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        # One byte more than is left shows a file that grew since its size was checked.
        wanted = self._left + 1 if size < 0 else min(size, self._left + 1)
        data = self._raw.read(wanted)
        if len(data) > self._left:
            raise ArchiveRefused(_CHANGED)
        self._left -= len(data)
        self.digest.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> str:
        """Hash the rest of the file (readers may stop before its end); the hex digest."""
        while self.read(_CHUNK):
            pass
        if self._left:
            raise ArchiveRefused(_CHANGED)
        return self.digest.hexdigest()


# Decompressed chunks a reader thread may hold ahead of its consumer: memory stays bounded
# (this many chunks of :data:`_CHUNK` per archive) whatever the archive expands to.
_AHEAD = 8


class _Prefetched:
    """A stream read by a thread of its own, ``_CHUNK`` at a time, up to :data:`_AHEAD`
    chunks ahead of :meth:`read`.

    The reading thread runs the file read, the archive's sha256 and the decompression
    (which all release the GIL) while the consumer parses, hashes and writes the members:
    on two cores, decompressing no longer waits for writing, nor writing for
    decompressing. What the thread raises is raised again by :meth:`read`. Use as a
    context manager: leaving it stops the thread and waits for it, so that nothing reads
    the underlying file afterwards but the caller.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(_AHEAD)
        self._stop = threading.Event()
        self._buffer = memoryview(b"")
        self._ended = False
        self._thread = threading.Thread(target=self._fill, name="venvlayers-unpack", daemon=True)

    def __enter__(self) -> _Prefetched:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            # Make room, so a thread blocked on a full queue sees the stop.
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _fill(self) -> None:
        item: bytes | BaseException
        while not self._stop.is_set():
            try:
                item = self._stream.read(_CHUNK)
            except BaseException as exc:  # handed to the consumer, raised there
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def read_view(self, size: int) -> memoryview:
        """Up to ``size`` bytes (all of the current chunk if negative), not copied; empty at
        the end."""
        if not self._buffer:
            if self._ended:
                return memoryview(b"")
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            if not item:
                self._ended = True
                return memoryview(b"")
            self._buffer = memoryview(item)
        count = len(self._buffer) if size < 0 else size
        view = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return view

    def read(self, size: int = -1) -> bytes:
        return self.read_view(size).tobytes()


@dataclass(frozen=True)
class _Scan:
    members: list[Member]
    sha256: str
    # What unpacking will read: decompressed bytes (tar), or the sum of member sizes (zip).
    expanded: int
    # The data of the regular files asked for, by layer-relative path.
    captured: dict[str, bytes]


def _wanted(name: str, top: str, capture: Collection[str]) -> str | None:
    """The layer-relative path of ``name`` if it is to be captured (bad names are left to
    :func:`check_members`)."""
    if not capture:
        return None
    try:
        relative = layer_relative(name, top)
    except UnsafeMember:
        return None
    return relative if relative in capture else None


def _keep(captured: dict[str, bytes], relative: str, data: bytes) -> None:
    if sum(map(len, captured.values())) + len(data) > _CAPTURE_ALLOWANCE:
        raise ArchiveRefused(f"member {relative!r} is larger than {_CAPTURE_ALLOWANCE} bytes")
    captured[relative] = data


def _bounded_chunks(member: Member, chunks: Iterator[Data]) -> Iterator[Data]:
    left = member.size
    for chunk in chunks:
        if len(chunk) > left:
            raise ArchiveRefused(
                f"member {member.name!r} holds more than its declared {member.size} bytes"
            )
        left -= len(chunk)
        yield chunk
    if left:
        raise ArchiveRefused(
            f"member {member.name!r} holds less than its declared {member.size} bytes"
        )
