"""The archive readers, one per format (tar with zstd, xz or gzip; zip), chosen by name."""

from __future__ import annotations

import contextlib
import gzip
import lzma
import stat
import struct
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO

import zstandard

from venvlayers.deploy.archive_io import (
    _CHANGED,
    _CHUNK,
    _CORRUPT,
    _HEADER_ALLOWANCE,
    _MAX_LINK_TEXT,
    _TAR_BUFFER,
    ArchiveRefused,
    _bounded_chunks,
    _BoundedStream,
    _HashingReader,
    _keep,
    _PastLimit,
    _Prefetched,
    _Scan,
    _too_big,
    _wanted,
)
from venvlayers.deploy.layer_writer import (
    LayerWriter,
)
from venvlayers.deploy.members import (
    Member,
    MemberKind,
    UnsafeMember,
    layer_relative,
)


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
        # Three threads: one reads and hashes the file, one decompresses, and the caller's
        # parses (and unpacks): the file's sha256 costs no time on the decompression's path.
        with (
            _Prefetched(reader) as compressed,  # type: ignore[arg-type]
            self._decompressed(compressed) as stream,  # type: ignore[arg-type]
            _Prefetched(stream) as prefetched,
        ):
            bounded = _BoundedStream(prefetched, limit)  # type: ignore[arg-type]
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
