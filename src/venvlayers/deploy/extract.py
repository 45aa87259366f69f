"""Archive readers, one per format, chosen by file extension.

Every archive is treated as hostile, even one whose sha256 matches its metadata:

- it is opened once, and only if it is a regular file inside the published folder
  (:func:`check_archive`); that one open file is hashed, checked and unpacked, so a file
  swapped in under the same name meanwhile is never read;
- a full layer archive is checked while it is unpacked, in one pass: each member is
  checked before it is written (:class:`~venvlayers.deploy.members.MemberGate`), links are
  made only once the whole list passed, and the sha256 is compared at the end; the caller
  unpacks into a hidden folder and deletes it when the archive is refused;
- an archive whose contents decide whether it is used at all (a delta) is scanned first,
  without writing anything, and the unpacking then writes exactly the members the scan
  checked, in the same order, refusing the archive at the first one that differs;
- what is read is bounded: no archive expands past the space given to it (counted before
  a member's data is read), tar headers may not grow beyond :data:`~venvlayers.deploy.archive_io.HEADER_ALLOWANCE`, and
  no member gets more bytes than it declares.
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
    MemberCheck,
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
    MemberGate,
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


class _Planned:
    """The members a scan found, which the unpacking must meet again, in the same order."""

    def __init__(self, scan: _Scan, top: str) -> None:
        self.top = top
        self._planned = iter(scan.members)
        self._count = len(scan.members)

    def admit(self, member: Member) -> str:
        if member != next(self._planned, None):
            raise ArchiveRefused(_CHANGED)
        return layer_relative(member.name, self.top)

    def finish(self) -> int:
        if next(self._planned, None) is not None:
            raise ArchiveRefused(_CHANGED)
        return self._count


@dataclass
class CheckedArchive:
    """A layer archive held open from its check until it is unpacked.

    Scanned (``scanned``): every member and the sha256 were checked by reading the whole
    archive once already (deltas, whose choice depends on what they carry), and the
    unpacking must find the same members again. Not scanned: only the file, its size and
    its format were checked, and the unpacking checks each member before writing it
    (:class:`MemberGate`) and the sha256 at the end; the caller discards what was written
    when it is refused. That is one pass over the archive instead of two.
    """

    path: Path
    top: str
    # Bytes the layer takes once unpacked, at least (scanned only: 0 otherwise).
    expanded: int
    _file: IO[bytes]
    _size: int
    _sha256: str
    _format: ArchiveFormat
    _scan: _Scan | None
    _lower: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self._size

    @property
    def scanned(self) -> bool:
        return self._scan is not None

    @property
    def members(self) -> list[Member]:
        """Every member, in order (scanned archives only)."""
        assert self._scan is not None
        return self._scan.members

    @property
    def captured(self) -> dict[str, bytes]:
        """The files asked for at the check (``capture``), by layer-relative path."""
        return self._scan.captured if self._scan is not None else {}

    def extract(
        self,
        dest: Path,
        *,
        on_read: Callable[[int], None] | None = None,
        writer: LayerWriter | None = None,
        room: Callable[[int], None] = lambda _count: None,
    ) -> Unpacked:
        """Unpack the layer folder's contents into the existing, empty folder ``dest``.

        ``on_read`` is told each count of archive bytes read, for a progress display;
        ``writer`` (see :class:`LayerWriter`) writes into the store; ``room`` is told the
        bytes each member expands to and raises :class:`ArchiveRefused` past the space
        left. Returns what was written, each file described (LayerWriter.settle). Raises
        :class:`ArchiveRefused`, leaving ``dest`` to the caller to discard.
        """
        self._file.seek(0)
        file = (
            self._file if on_read is None else cast(IO[bytes], _CountingReader(self._file, on_read))
        )
        writer = writer or LayerWriter(dest)
        gate: MemberCheck
        if self._scan is not None:
            gate = _Planned(self._scan, self.top)
        else:
            gate = MemberGate(self.top, self._lower, reserved=(MARKER,))
        try:
            try:
                digest = self._format.extract(file, self._size, gate, writer, room)
            except ArchiveRefused:
                # A damaged file reads as garbage; the hash is the clearer reason when it
                # differs.
                if self._scan is None and not self._hash_matches():
                    raise _HashMismatch from None
                raise
        finally:
            writer.close()
        if digest != self._sha256:
            raise _HashMismatch if self._scan is None else ArchiveRefused(_CHANGED)
        # Only now may a manifest inside the archive be believed (LayerWriter.settle).
        writer.settle()
        if len(writer.entries) <= 1:
            raise ArchiveRefused(f"has nothing in its layer folder {self.top!r}")
        return Unpacked(writer.entries, writer.keys)

    def _hash_matches(self) -> bool:
        self._file.seek(0)
        try:
            return _HashingReader(self._file, self._size).drain() == self._sha256
        except ArchiveRefused:
            return False

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
    scan: bool = True,
) -> CheckedArchive:
    """Open ``archive`` and check it against its published size, and (``scan``) its hash
    and every member.

    ``root`` is the published folder the archive must lie in (None: anywhere); ``space``
    the bytes it may expand to (scanned only; the unpacking bounds the others); ``lower``
    the layers deployed beside it that its links may lead into; ``capture`` layer-relative
    files to keep in memory (see :attr:`CheckedArchive.captured`, scanned only). Raises
    :class:`ArchiveRefused`; the caller closes the result.
    """
    fmt = format_for(archive)
    file, actual_size = _open_regular(archive, root)
    try:
        if actual_size != size:
            raise ArchiveRefused(f"has {actual_size} bytes, the metadata says {size}")
        if not scan:
            return CheckedArchive(archive, top, 0, file, size, sha256, fmt, None, tuple(lower))
        try:
            scanned = fmt.scan(file, size, space, top, capture)
        except ArchiveRefused:
            # A damaged file reads as garbage; the hash is the clearer reason when it differs.
            file.seek(0)
            if _HashingReader(file, size).drain() != sha256:
                raise _HashMismatch from None
            raise
        if scanned.sha256 != sha256:
            raise _HashMismatch
        try:
            gate = MemberGate(top, lower, reserved=(MARKER,))
            for member in scanned.members:
                gate.admit(member)
            count = gate.finish()
        except UnsafeMember as exc:
            raise ArchiveRefused(str(exc)) from None
        if count == 0:
            raise ArchiveRefused(f"has nothing in its layer folder {top!r}")
    except BaseException:
        file.close()
        raise
    return CheckedArchive(
        archive, top, scanned.expanded, file, size, sha256, fmt, scanned, tuple(lower)
    )


def inspect_archive(archive: Path, *, size: int, sha256: str, top: str) -> int:
    """Check ``archive`` (see :func:`check_archive`); returns the number of members."""
    checked = check_archive(
        archive, size=size, sha256=sha256, top=top, root=None, space=free_space(archive.parent)
    )
    checked.close()
    return check_members(checked.members, top)


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
