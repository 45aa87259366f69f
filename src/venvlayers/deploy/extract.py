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

import contextlib
import gzip
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import struct
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import zstandard

from venvlayers.deploy.files import MARKER, Entry, StatKey, stat_key
from venvlayers.deploy.members import (
    Member,
    MemberKind,
    UnsafeMember,
    check_members,
    layer_relative,
)
from venvlayers.deploy.store import Store, StoreKey, entry_mode

_CHUNK = 1 << 20
# tarfile's stream buffer: it copies what remains of the buffer on every read of a member
# header, so a large buffer makes archives of many small files slow.
_TAR_BUFFER = 1 << 16
# Headers tarfile may read before one member (pax records, GNU long names): tarfile holds a
# header in memory, so a header claiming gigabytes would exhaust memory before any check.
_HEADER_ALLOWANCE = 1 << 20
# The longest symlink target a file system accepts (PATH_MAX).
_MAX_LINK_TEXT = 4096
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


class ArchiveRefused(Exception):
    """The archive is damaged or unsafe; ``str()`` is the reason, for one line of output."""


class _HashMismatch(ArchiveRefused):
    def __init__(self) -> None:
        super().__init__("does not match its published sha256")


class _PastLimit(Exception):
    """More decompressed bytes than allowed were about to be read."""


def free_space(folder: Path) -> int:
    """Bytes still free on the file system that holds (or will hold) ``folder``."""
    path = Path(os.path.abspath(folder))
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _too_big(space: int) -> str:
    return f"expands to more than the {space} bytes free in the deployment folder"


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


class _BoundedStream:
    """A decompressed stream that raises :class:`_PastLimit` at the first byte past ``limit``."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        room = self.limit - self.count + 1
        data = self._stream.read(room if size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise _PastLimit
        return data


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


class LayerWriter:
    """Writes checked members into ``dest``, never more bytes than a member declares.

    Symlinks are made last, so nothing is ever written through one; files are created
    exclusively and without following a link, a second line behind the member checks.
    Every file is hashed as it is written: what was unpacked is described (``entries``,
    and the stat keys that show a later change without reading) at no extra read.

    With a ``store``, each file written becomes a store entry (it is complete and hashed
    before its name appears there), and a file whose entry is ``ready`` (by path: the key
    the layer's manifest gives it, already in the store and checked) is not written at
    all: its data is read past and the entry placed instead. ``skip`` names files read
    past and left out (a delta's descriptor). ``before_put`` is called before a written
    file enters the store (the step hook).
    """

    def __init__(
        self,
        dest: Path,
        *,
        store: Store | None = None,
        ready: dict[str, StoreKey] | None = None,
        skip: Collection[str] = (),
        before_put: Callable[[], None] | None = None,
    ) -> None:
        self._dest = os.fspath(dest)
        self._folders = {""}
        self._symlinks: list[tuple[str, str]] = []
        self._store = store
        self._ready = ready or {}
        self._skip = skip
        self._before_put = before_put
        self.entries: dict[str, Entry] = {}
        self.keys: dict[str, StatKey] = {}

    def _path(self, relative: str) -> str:
        return os.path.join(self._dest, relative)

    def _parent(self, relative: str) -> None:
        parent = posixpath.dirname(relative)
        if parent in self._folders:
            return
        missing = []
        while parent not in self._folders:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        for folder in reversed(missing):
            self._make_folder(folder)

    def _make_folder(self, relative: str) -> None:
        path = self._path(relative)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        # Neither the umask nor the archive decides a folder's mode: every user runs the layer.
        os.chmod(path, 0o755, follow_symlinks=False)
        self._folders.add(relative)

    def folder(self, relative: str) -> None:
        if relative in self._folders:
            return
        self._parent(relative)
        self._make_folder(relative)

    def file(
        self,
        member: Member,
        relative: str,
        chunks: Iterator[bytes],
        *,
        executable: bool,
        mtime: float | None = None,
    ) -> None:
        if relative in self._skip:
            for _chunk in _bounded_chunks(member, chunks):
                pass
            return
        self._parent(relative)
        if self._store is not None and relative in self._ready:
            key = self._ready[relative]
            # Read past, not hashed: the entry was checked against the manifest's hash,
            # and the archive's sha256 binds that manifest and this member alike.
            for _chunk in _bounded_chunks(member, chunks):
                pass
            self.placed(relative, key, member.size)
            return
        plain = 0o755 if executable else 0o644
        mode = entry_mode(executable) if self._store is not None else plain
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._path(relative), flags, mode)
        digest = hashlib.sha256()
        with open(fd, "wb", buffering=0, closefd=True) as out:
            for chunk in _bounded_chunks(member, chunks):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[out.write(view) or 0 :]
            # The umask must not decide a layer file's mode: every user runs the layer.
            os.fchmod(fd, mode)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            info = os.fstat(fd)
        self.entries[relative] = Entry("f", mode, member.size, digest.hexdigest())
        self.keys[relative] = stat_key(info)
        if self._store is not None:
            if self._before_put is not None:
                self._before_put()
            self._store.put(self._path(relative), (digest.hexdigest(), executable))
            self.keys[relative] = stat_key(os.lstat(self._path(relative)))

    def placed(self, relative: str, key: StoreKey, size: int) -> None:
        """Make the file ``relative`` from the store entry ``key`` (checked by the caller)."""
        assert self._store is not None
        self._parent(relative)
        path = self._path(relative)
        self._store.place(key, path)
        self.entries[relative] = Entry("f", entry_mode(key[1]), size, key[0])
        self.keys[relative] = stat_key(os.lstat(path))

    def hard_link(self, relative: str, target: str) -> None:
        self._parent(relative)
        os.link(self._path(target), self._path(relative), follow_symlinks=False)
        self.entries[relative] = self.entries[target]
        self.keys[relative] = self.keys[target]

    def symlink(self, relative: str, link: str) -> None:
        self._symlinks.append((relative, link))

    def finish(self) -> None:
        """Make the symlinks and describe the folders; may be called again after more
        members were added."""
        symlinks, self._symlinks = self._symlinks, []
        for relative, link in symlinks:
            self._parent(relative)
            path = self._path(relative)
            os.symlink(link, path)
            self.entries[relative] = Entry("l", link=link)
            self.keys[relative] = stat_key(os.lstat(path))
        for relative in self._folders:
            info = os.lstat(self._path(relative))
            self.entries[relative] = Entry("d", stat.S_IMODE(info.st_mode))
            self.keys[relative] = stat_key(info)


@dataclass(frozen=True)
class Unpacked:
    """What an archive put into a folder: entries by layer-relative path (``""``: the
    folder itself), and their stat keys just after unpacking."""

    entries: dict[str, Entry]
    keys: dict[str, StatKey]


class ArchiveFormat(ABC):
    suffix: str

    @abstractmethod
    def scan(
        self, file: IO[bytes], size: int, space: int, top: str, capture: Collection[str]
    ) -> _Scan:
        """Every member and the file's sha256; refused past ``space`` bytes unpacked.

        ``file`` is the open archive of ``size`` bytes, read from its start; the regular
        files of the layer folder ``top`` named in ``capture`` are kept in memory.
        """

    @abstractmethod
    def extract(
        self, file: IO[bytes], size: int, scan: _Scan, writer: LayerWriter, top: str
    ) -> str:
        """Unpack the scanned members of the folder ``top`` through ``writer``; the file's
        sha256."""


def _tar_member(info: tarfile.TarInfo) -> Member:
    if info.isdir():
        return Member(info.name, MemberKind.DIR)
    if info.issym():
        return Member(info.name, MemberKind.SYMLINK, link=info.linkname)
    if info.islnk():
        return Member(info.name, MemberKind.HARDLINK, link=info.linkname)
    if info.isreg() and not info.issparse():
        return Member(
            info.name, MemberKind.FILE, size=info.size, executable=bool(info.mode & 0o111)
        )
    return Member(info.name, MemberKind.SPECIAL)


def _tar_chunks(source: IO[bytes], size: int) -> Iterator[bytes]:
    left = size
    while left:
        chunk = source.read(min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


class TarFormat(ArchiveFormat):
    """A tar stream, read front to back (never seeking), decompressed by ``decompressor``."""

    def __init__(
        self,
        suffix: str,
        decompressor: Callable[[IO[bytes]], contextlib.AbstractContextManager[IO[bytes]]],
    ) -> None:
        self.suffix = suffix
        self._decompressed = decompressor

    @contextlib.contextmanager
    def _open(
        self, reader: _HashingReader, limit: int
    ) -> Iterator[tuple[tarfile.TarFile, _BoundedStream]]:
        with self._decompressed(reader) as stream:  # type: ignore[arg-type]
            bounded = _BoundedStream(stream, limit)
            with tarfile.open(fileobj=bounded, mode="r|", bufsize=_TAR_BUFFER) as tar:  # type: ignore[call-overload]
                yield tar, bounded

    def scan(
        self, file: IO[bytes], size: int, space: int, top: str, capture: Collection[str]
    ) -> _Scan:
        reader = _HashingReader(file, size)
        members = []
        captured: dict[str, bytes] = {}
        try:
            with self._open(reader, _HEADER_ALLOWANCE + _TAR_BUFFER) as (tar, bounded):
                for info in tar:
                    member = _tar_member(info)
                    members.append(member)
                    # ``tar.offset`` is where the next header starts: this member's data
                    # is counted (and refused) before tarfile reads or skips any of it.
                    if tar.offset > space:
                        raise ArchiveRefused(_too_big(space))
                    bounded.limit = tar.offset + _HEADER_ALLOWANCE + _TAR_BUFFER
                    wanted = _wanted(info.name, top, capture)
                    if wanted is not None and member.kind is MemberKind.FILE:
                        source = tar.extractfile(info)
                        assert source is not None
                        _keep(captured, wanted, b"".join(_tar_chunks(source, member.size)))
                expanded = bounded.count
        except _PastLimit:
            raise ArchiveRefused(
                f"has a member header larger than {_HEADER_ALLOWANCE} bytes"
            ) from None
        except _CORRUPT as exc:
            raise ArchiveRefused(f"cannot be read as {self.suffix} ({exc})") from None
        return _Scan(members, reader.drain(), expanded, captured)

    def extract(
        self, file: IO[bytes], size: int, scan: _Scan, writer: LayerWriter, top: str
    ) -> str:
        reader = _HashingReader(file, size)
        planned = iter(scan.members)
        try:
            # The same bytes read the same way come to what the scan read; tarfile reads in
            # whole buffers, so allow one more.
            with self._open(reader, scan.expanded + _TAR_BUFFER) as (tar, _bounded):
                for info in tar:
                    member = _tar_member(info)
                    if member != next(planned, None):
                        raise ArchiveRefused(_CHANGED)
                    relative = layer_relative(member.name, top)
                    if not relative:
                        continue
                    if member.kind is MemberKind.DIR:
                        writer.folder(relative)
                    elif member.kind is MemberKind.SYMLINK:
                        writer.symlink(relative, member.link)
                    elif member.kind is MemberKind.HARDLINK:
                        writer.hard_link(relative, layer_relative(member.link, top))
                    else:
                        source = tar.extractfile(info)
                        assert source is not None  # a regular file always has a reader
                        writer.file(
                            member,
                            relative,
                            _tar_chunks(source, member.size),
                            executable=bool(info.mode & 0o111),
                            mtime=info.mtime,
                        )
            if next(planned, None) is not None:
                raise ArchiveRefused(_CHANGED)
            writer.finish()
        except (_PastLimit, UnsafeMember):
            raise ArchiveRefused(_CHANGED) from None
        except _CORRUPT as exc:
            raise ArchiveRefused(f"cannot be unpacked ({exc})") from None
        return reader.drain()


@contextlib.contextmanager
def _zstd(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    with zstandard.ZstdDecompressor().stream_reader(raw, read_size=_CHUNK) as stream:
        yield stream


@contextlib.contextmanager
def _gzip(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
        yield stream  # type: ignore[misc]


@contextlib.contextmanager
def _xz(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    with lzma.LZMAFile(raw, mode="rb") as stream:
        yield stream


def _zip_kind(info: zipfile.ZipInfo) -> MemberKind:
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        return MemberKind.DIR
    if stat.S_ISLNK(mode):
        return MemberKind.SYMLINK
    if mode and not stat.S_ISREG(mode):
        return MemberKind.SPECIAL
    return MemberKind.FILE


_ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")


def _zip_chunks(file: IO[bytes], size: int, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The member's data, read from the one open file and inflated here, never past its size.

    zipfile itself stops at the declared size and ignores what follows; a member holding
    more than it declares is refused instead (the caller refuses a chunk that goes past).
    """
    if info.flag_bits & 0x1:
        raise ArchiveRefused(f"member {info.filename!r} is encrypted")
    file.seek(info.header_offset)
    magic, name_length, extra_length = _ZIP_LOCAL_HEADER.unpack(file.read(_ZIP_LOCAL_HEADER.size))
    if magic != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
    start = info.header_offset + _ZIP_LOCAL_HEADER.size + name_length + extra_length
    if start + info.compress_size > size:
        raise zipfile.BadZipFile(f"data of {info.filename!r} lies past the end of the file")
    if info.compress_type == zipfile.ZIP_DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    elif info.compress_type != zipfile.ZIP_STORED:
        raise ArchiveRefused(f"member {info.filename!r} uses an unsupported compression")
    file.seek(start)
    left_in, left_out, crc = info.compress_size, info.file_size, 0
    pending = b""
    while True:
        if not pending:
            if not left_in:
                break
            pending = file.read(min(_CHUNK, left_in))
            if not pending:
                raise zipfile.BadZipFile(f"data of {info.filename!r} is truncated")
            left_in -= len(pending)
        if info.compress_type == zipfile.ZIP_STORED:
            chunk, pending = pending, b""
        else:
            # One byte more than declared is enough to show the member holds more.
            chunk = inflater.decompress(pending, left_out + 1)
            pending = inflater.unconsumed_tail
        left_out -= len(chunk)
        crc = zlib.crc32(chunk, crc)
        yield chunk
        if left_out < 0 or (info.compress_type == zipfile.ZIP_DEFLATED and inflater.eof):
            break
    if left_out == 0 and crc != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 for {info.filename!r}")


class ZipFormat(ArchiveFormat):
    """Zip archives; unix modes (exec bits, symlinks) come from ``external_attr``."""

    suffix = ".zip"

    def _members(
        self, file: IO[bytes], size: int, infos: list[zipfile.ZipInfo], space: int
    ) -> list[Member]:
        if sum(info.file_size for info in infos) > space:
            raise ArchiveRefused(_too_big(space))
        members = []
        for info in infos:
            kind = _zip_kind(info)
            link = ""
            if kind is MemberKind.SYMLINK:
                if info.file_size > _MAX_LINK_TEXT:
                    raise ArchiveRefused(
                        f"member {info.filename!r} is a symlink to a {info.file_size}-byte path"
                    )
                member = Member(info.filename, kind, size=info.file_size)
                data = b"".join(_bounded_chunks(member, _zip_chunks(file, size, info)))
                link = data.decode("utf-8")
            executable = kind is MemberKind.FILE and bool((info.external_attr >> 16) & 0o111)
            members.append(
                Member(info.filename, kind, size=info.file_size, link=link, executable=executable)
            )
        return members

    def _read(
        self, file: IO[bytes], size: int, space: int
    ) -> tuple[list[Member], list[zipfile.ZipInfo], str]:
        file.seek(0)
        reader = _HashingReader(file, size)
        digest = reader.drain()
        try:
            with zipfile.ZipFile(file) as zf:
                infos = zf.infolist()
            return self._members(file, size, infos, space), infos, digest
        except _CORRUPT as exc:
            raise ArchiveRefused(f"cannot be read as zip ({exc})") from None

    def scan(
        self, file: IO[bytes], size: int, space: int, top: str, capture: Collection[str]
    ) -> _Scan:
        members, infos, digest = self._read(file, size, space)
        captured: dict[str, bytes] = {}
        # Zip keeps sizes and data apart: only inflating shows whether a member holds what
        # it declares, and a refusal must come before anything is written.
        try:
            for member, info in zip(members, infos, strict=True):
                if member.kind is MemberKind.FILE:
                    chunks = _bounded_chunks(member, _zip_chunks(file, size, info))
                    wanted = _wanted(member.name, top, capture)
                    if wanted is None:
                        for _chunk in chunks:
                            pass
                    else:
                        _keep(captured, wanted, b"".join(chunks))
        except _CORRUPT as exc:
            raise ArchiveRefused(f"cannot be read as zip ({exc})") from None
        return _Scan(members, digest, sum(info.file_size for info in infos), captured)

    def extract(
        self, file: IO[bytes], size: int, scan: _Scan, writer: LayerWriter, top: str
    ) -> str:
        members, infos, digest = self._read(file, size, scan.expanded)
        if members != scan.members:
            raise ArchiveRefused(_CHANGED)
        try:
            for member, info in zip(members, infos, strict=True):
                relative = layer_relative(member.name, top)
                if not relative:
                    continue
                if member.kind is MemberKind.DIR:
                    writer.folder(relative)
                elif member.kind is MemberKind.SYMLINK:
                    writer.symlink(relative, member.link)
                else:
                    writer.file(
                        member,
                        relative,
                        _zip_chunks(file, size, info),
                        executable=bool((info.external_attr >> 16) & 0o111),
                    )
            writer.finish()
        except UnsafeMember:
            raise ArchiveRefused(_CHANGED) from None
        except _CORRUPT as exc:
            raise ArchiveRefused(f"cannot be unpacked ({exc})") from None
        return digest


def _bounded_chunks(member: Member, chunks: Iterator[bytes]) -> Iterator[bytes]:
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


FORMATS: dict[str, ArchiveFormat] = {
    fmt.suffix: fmt
    for fmt in (
        TarFormat(".tar.zst", _zstd),
        TarFormat(".tar.xz", _xz),
        TarFormat(".tar.gz", _gzip),
        ZipFormat(),
    )
}


def format_for(archive: Path) -> ArchiveFormat:
    for suffix, fmt in FORMATS.items():
        if archive.name.endswith(suffix):
            return fmt
    known = ", ".join(FORMATS)
    raise ArchiveRefused(f"has an unknown archive format (expected one of {known})")


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
        if self._format.extract(file, self._size, self._scan, writer, self.top) != (
            self._scan.sha256
        ):
            raise ArchiveRefused(_CHANGED)
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
