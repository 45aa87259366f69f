"""The archive readers, one per format (tar with zstd, xz or gzip; zip), chosen by name."""

from __future__ import annotations

import contextlib
import gzip
import lzma
import stat
import struct
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Protocol

import zstandard

from venvlayers.deploy.archive_io import (
    _CHUNK,
    _CORRUPT,
    HEADER_ALLOWANCE,
    MAX_LINK_TEXT,
    ArchiveRefused,
    SpaceBudget,
    _bounded_chunks,
    _HashingReader,
    _keep,
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
from venvlayers.deploy.tar_stream import TarHeaderTooLarge, TarStream

# No bound on the sum of member sizes where the caller bounds it itself.
_NO_LIMIT = 1 << 62


class MemberCheck(Protocol):
    """Decides, member by member, what an unpacking may write (see deploy/members.py)."""

    top: str

    def admit(self, member: Member) -> str:
        """The member's layer-relative path; raises if it must not be written."""
        ...

    def finish(self) -> int:
        """The checks over the whole list, before any link is made; the member count."""
        ...


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
        self,
        file: IO[bytes],
        size: int,
        gate: MemberCheck,
        writer: LayerWriter,
        room: Callable[[int], None],
    ) -> str:
        """Unpack the members ``gate`` admits through ``writer``; the file's sha256.

        ``room`` is told the bytes each member expands to before any of them is read
        (it raises :class:`ArchiveRefused` past the space there is); ``gate.finish`` runs
        before the writer makes links.
        """


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
    def _open(self, reader: _HashingReader, room: Callable[[int], None]) -> Iterator[TarStream]:
        # Three threads: one reads and hashes the file, one decompresses, and the caller's
        # parses (and unpacks): the file's sha256 costs no time on the decompression's path.
        with (
            _Prefetched(reader) as compressed,  # type: ignore[arg-type]
            self._decompressed(compressed) as stream,  # type: ignore[arg-type]
            _Prefetched(stream) as prefetched,
        ):
            yield TarStream(prefetched, room)

    def scan(
        self, file: IO[bytes], size: int, space: int, top: str, capture: Collection[str]
    ) -> _Scan:
        reader = _HashingReader(file, size)
        members = []
        captured: dict[str, bytes] = {}
        budget = SpaceBudget(space)
        try:
            with self._open(reader, budget.take) as tar:
                for found in tar.members():
                    member = found.member
                    members.append(member)
                    wanted = _wanted(member.name, top, capture)
                    if wanted is not None and member.kind is MemberKind.FILE:
                        data = b"".join(tar.data(member.size))
                        _keep(captured, wanted, data)
        except TarHeaderTooLarge:
            raise ArchiveRefused(
                f"has a member header larger than {HEADER_ALLOWANCE} bytes"
            ) from None
        except _CORRUPT as exc:
            raise ArchiveRefused(f"cannot be read as {self.suffix} ({exc})") from None
        return _Scan(members, reader.drain(), budget.used, captured)

    def extract(
        self,
        file: IO[bytes],
        size: int,
        gate: MemberCheck,
        writer: LayerWriter,
        room: Callable[[int], None],
    ) -> str:
        reader = _HashingReader(file, size)
        try:
            with self._open(reader, room) as tar:
                for found in tar.members():
                    member = found.member
                    relative = gate.admit(member)
                    if not relative:
                        continue
                    if member.kind is MemberKind.DIR:
                        writer.folder(relative)
                    elif member.kind is MemberKind.SYMLINK:
                        writer.symlink(relative, member.link)
                    elif member.kind is MemberKind.HARDLINK:
                        writer.hard_link(relative, layer_relative(member.link, gate.top))
                    else:
                        writer.file(
                            member,
                            relative,
                            tar.data(member.size),
                            executable=member.executable,
                            mtime=found.mtime,
                        )
            gate.finish()
            writer.finish()
        except TarHeaderTooLarge:
            raise ArchiveRefused(
                f"has a member header larger than {HEADER_ALLOWANCE} bytes"
            ) from None
        except UnsafeMember as exc:
            raise ArchiveRefused(str(exc)) from None
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
                if info.file_size > MAX_LINK_TEXT:
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
        self,
        file: IO[bytes],
        size: int,
        gate: MemberCheck,
        writer: LayerWriter,
        room: Callable[[int], None],
    ) -> str:
        # The central directory lists every member: all are checked, and the whole file
        # hashed, before anything is written.
        members, infos, digest = self._read(file, size, _NO_LIMIT)
        try:
            room(sum(info.file_size for info in infos))
            relatives = [gate.admit(member) for member in members]
            gate.finish()
            for member, info, relative in zip(members, infos, relatives, strict=True):
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
                        executable=member.executable,
                    )
            writer.finish()
        except UnsafeMember as exc:
            raise ArchiveRefused(str(exc)) from None
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
