"""Archive readers, one per format, chosen by file extension.

Every archive is treated as hostile, even one whose sha256 matches its metadata:

- it is opened once, and only if it is a regular file inside the published folder
  (:func:`check_archive`); that one open file is hashed, scanned and later unpacked, so a
  file swapped in under the same name meanwhile is never read;
- the scan lists every member without writing anything, and :func:`check_members` decides
  from that list where each member lands; the unpacking then writes exactly those members,
  in the same order, and refuses the archive at the first one that differs;
- what is read is bounded: the scan stops at the first member that takes the archive past
  the space given to it, tar headers may not grow beyond :data:`_HEADER_ALLOWANCE`, the
  unpacking reads no more than the scan did, and no member gets more bytes than it declares.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from venvlayers.deploy.archive_formats import (
    ArchiveFormat,
    format_for,
)
from venvlayers.deploy.archive_io import (
    _CHANGED,
    _CHUNK,
    ArchiveRefused,
    _HashingReader,
    _HashMismatch,
    _Scan,
    free_space,
)
from venvlayers.deploy.files import MARKER
from venvlayers.deploy.layer_writer import (
    LayerWriter,
    Unpacked,
)
from venvlayers.deploy.members import (
    Member,
    UnsafeMember,
    check_members,
    layer_relative,
)


def _open_regular(archive: Path, root: Path | None) -> tuple[IO[bytes], int]:
    """The archive opened for reading, and its size; only a regular file inside ``root``.

    A path that is (or passes through) a link is followed only to a place inside ``root``,
    and nothing but a regular file is opened: a device, pipe or socket could block forever
    or never end. The file checked is the file opened (same device and inode).
    """
    real = os.path.realpath(archive)
    if root is not None:
        base = os.path.realpath(root)
        if os.path.commonpath([real, base]) != base:
            raise ArchiveRefused(f"leads outside the published folder {root} (to {real})")
    try:
        before = os.stat(real)
    except FileNotFoundError:
        raise ArchiveRefused("is missing") from None
    except OSError as exc:
        raise ArchiveRefused(f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(before.st_mode):
        raise ArchiveRefused("is not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ArchiveRefused(f"cannot be read ({exc.strerror})") from None
    try:
        opened = os.fstat(fd)
        if not (stat.S_ISREG(opened.st_mode) and os.path.samestat(before, opened)):
            raise ArchiveRefused(_CHANGED)
        os.set_blocking(fd, True)
        file: IO[bytes] = open(fd, "rb", buffering=_CHUNK)  # noqa: SIM115 (kept open by the caller)
    except BaseException:
        os.close(fd)
        raise
    return file, opened.st_size


class _CountingReader:
    """The archive file as the formats read it, telling a progress callback what was read."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._on_read(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@dataclass
class CheckedArchive:
    """A layer archive that passed every check, held open until it is unpacked."""

    path: Path
    top: str
    # Bytes the layer takes once unpacked, at least (decompressed tar stream, zip sizes).
    expanded: int
    # Members in the layer folder (folders, files, links).
    count: int
    _file: IO[bytes]
    _size: int
    _format: ArchiveFormat
    _scan: _Scan

    @property
    def size(self) -> int:
        return self._size

    @property
    def members(self) -> list[Member]:
        return self._scan.members

    @property
    def captured(self) -> dict[str, bytes]:
        """The files asked for at the check (``capture``), by layer-relative path."""
        return self._scan.captured

    def extract(
        self,
        dest: Path,
        *,
        on_read: Callable[[int], None] | None = None,
        writer: LayerWriter | None = None,
    ) -> Unpacked:
        """Unpack the layer folder's contents into the existing, empty folder ``dest``.

        ``on_read`` is told each count of archive bytes read, for a progress display;
        ``writer`` (see :class:`LayerWriter`) writes into the store.
        Returns what was written, each file hashed on the way.
        """
        self._file.seek(0)
        file = (
            self._file if on_read is None else cast(IO[bytes], _CountingReader(self._file, on_read))
        )
        writer = writer or LayerWriter(dest)
        try:
            if self._format.extract(file, self._size, self._scan, writer, self.top) != (
                self._scan.sha256
            ):
                raise ArchiveRefused(_CHANGED)
        finally:
            writer.close()
        return Unpacked(writer.entries, writer.keys)

    def close(self) -> None:
        self._file.close()


def check_archive(
    archive: Path,
    *,
    size: int,
    sha256: str,
    top: str,
    root: Path | None,
    space: int,
    lower: Collection[str] = (),
    capture: Collection[str] = (),
) -> CheckedArchive:
    """Open ``archive`` and check it against its published size and hash and every member.

    ``root`` is the published folder the archive must lie in (None: anywhere); ``space``
    the bytes it may expand to; ``lower`` the layers deployed beside it that its links may
    lead into; ``capture`` layer-relative files to keep in memory (see
    :attr:`CheckedArchive.captured`). Raises :class:`ArchiveRefused`; the caller closes the
    result.
    """
    fmt = format_for(archive)
    file, actual_size = _open_regular(archive, root)
    try:
        if actual_size != size:
            raise ArchiveRefused(f"has {actual_size} bytes, the metadata says {size}")
        try:
            scan = fmt.scan(file, size, space, top, capture)
        except ArchiveRefused:
            # A damaged file reads as garbage; the hash is the clearer reason when it differs.
            file.seek(0)
            if _HashingReader(file, size).drain() != sha256:
                raise _HashMismatch from None
            raise
        if scan.sha256 != sha256:
            raise _HashMismatch
        try:
            count = check_members(scan.members, top, lower)
            for member in scan.members:
                if layer_relative(member.name, top) == MARKER:
                    raise UnsafeMember(member.name, "has a name venvlayers reserves for itself")
        except UnsafeMember as exc:
            raise ArchiveRefused(str(exc)) from None
        if count == 0:
            raise ArchiveRefused(f"has nothing in its layer folder {top!r}")
    except BaseException:
        file.close()
        raise
    return CheckedArchive(archive, top, scan.expanded, count, file, size, fmt, scan)


def inspect_archive(archive: Path, *, size: int, sha256: str, top: str) -> int:
    """Check ``archive`` (see :func:`check_archive`); returns the number of members."""
    checked = check_archive(
        archive, size=size, sha256=sha256, top=top, root=None, space=free_space(archive.parent)
    )
    checked.close()
    return checked.count


def extract_archive(archive: Path, dest: Path, *, sha256: str, top: str) -> Unpacked:
    """Check and unpack the layer folder ``top`` of ``archive`` into the existing ``dest``."""
    try:
        checked = check_archive(
            archive,
            size=archive.stat().st_size,
            sha256=sha256,
            top=top,
            root=None,
            space=free_space(dest),
        )
    except _HashMismatch:
        # ``sha256`` is what the file had when it was inspected.
        raise ArchiveRefused(_CHANGED) from None
    try:
        return checked.extract(dest)
    finally:
        checked.close()


__all__ = [
    "ArchiveRefused",
    "CheckedArchive",
    "LayerWriter",
    "Unpacked",
    "check_archive",
    "extract_archive",
    "format_for",
    "free_space",
    "inspect_archive",
]
