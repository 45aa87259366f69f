"""Archive readers, one per format, chosen by file extension.

Each reader does two passes over a layer archive: :meth:`ArchiveFormat.scan` lists every
member (and hashes the file on the way) without writing anything; :meth:`ArchiveFormat.extract`
unpacks the layer folder's *contents* into a destination folder, so a layer can be unpacked
under a temporary name beside its final place.
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import zstandard

from venvlayers._fs import sha256_file
from venvlayers.deploy.members import (
    Member,
    MemberKind,
    UnsafeMember,
    check_members,
    layer_relative,
)

_CHUNK = 1 << 20
# tarfile's stream buffer: it copies what remains of the buffer on every read of a member
# header, so a large buffer makes archives of many small files slow.
_TAR_BUFFER = 1 << 16
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
)


class ArchiveRefused(Exception):
    """The archive is damaged or unsafe; ``str()`` is the reason, for one line of output."""


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
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
        return self.digest.hexdigest()


class ArchiveFormat(ABC):
    suffix: str

    @abstractmethod
    def scan(self, archive: Path) -> tuple[list[Member], str]:
        """Every member, and the sha256 (hex) of the archive file."""

    @abstractmethod
    def extract(self, archive: Path, dest: Path, top: str) -> str:
        """Unpack the contents of the folder ``top`` into ``dest``; the file's sha256 (hex)."""


def _tar_member(info: tarfile.TarInfo) -> Member:
    if info.isdir():
        return Member(info.name, MemberKind.DIR)
    if info.issym():
        return Member(info.name, MemberKind.SYMLINK, link=info.linkname)
    if info.islnk():
        return Member(info.name, MemberKind.HARDLINK, link=info.linkname)
    if info.isreg():
        return Member(info.name, MemberKind.FILE, size=info.size)
    return Member(info.name, MemberKind.SPECIAL)


def _strip_top(top: str) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    """A tarfile filter: members lose their top folder, then go through the ``data`` filter."""

    def strip(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            relative = layer_relative(member.name, top)
            if not relative:
                return None
            if member.islnk():
                linked = layer_relative(member.linkname, top)
                member = member.replace(name=relative, linkname=linked, deep=False)
            else:
                member = member.replace(name=relative, deep=False)
        except UnsafeMember as exc:
            raise tarfile.FilterError(str(exc)) from None
        return tarfile.data_filter(member, dest)

    return strip


_TarMode = Literal["r|", "r|gz", "r|xz"]


class TarFormat(ArchiveFormat):
    """A tar stream, read front to back (never seeking).

    tarfile decompresses gz and xz itself (``mode``); other codecs come as ``decompressor``.
    """

    def __init__(
        self,
        suffix: str,
        mode: _TarMode,
        decompressor: Callable[[IO[bytes]], contextlib.AbstractContextManager[IO[bytes]]],
    ) -> None:
        self.suffix = suffix
        self._mode: _TarMode = mode
        self._decompressed = decompressor

    @contextlib.contextmanager
    def _open(self, raw: IO[bytes]) -> Iterator[tarfile.TarFile]:
        with (
            self._decompressed(raw) as stream,
            tarfile.open(fileobj=stream, mode=self._mode, bufsize=_TAR_BUFFER) as tar,
        ):
            yield tar

    def scan(self, archive: Path) -> tuple[list[Member], str]:
        with archive.open("rb") as raw:
            reader = _HashingReader(raw)
            try:
                with self._open(reader) as tar:  # type: ignore[arg-type]
                    members = [_tar_member(info) for info in tar]
            except _CORRUPT as exc:
                reader.drain()
                raise ArchiveRefused(f"cannot be read as {self.suffix} ({exc})") from None
            return members, reader.drain()

    def extract(self, archive: Path, dest: Path, top: str) -> str:
        with archive.open("rb") as raw:
            reader = _HashingReader(raw)
            try:
                with self._open(reader) as tar:  # type: ignore[arg-type]
                    tar.extractall(dest, filter=_strip_top(top))
            except _CORRUPT as exc:
                raise ArchiveRefused(f"cannot be unpacked ({exc})") from None
            return reader.drain()


@contextlib.contextmanager
def _zstd(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    with zstandard.ZstdDecompressor().stream_reader(raw, read_size=_CHUNK) as stream:
        yield stream


@contextlib.contextmanager
def _passthrough(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    yield raw


def _zip_kind(info: zipfile.ZipInfo) -> MemberKind:
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        return MemberKind.DIR
    if stat.S_ISLNK(mode):
        return MemberKind.SYMLINK
    if mode and not stat.S_ISREG(mode):
        return MemberKind.SPECIAL
    return MemberKind.FILE


class ZipFormat(ArchiveFormat):
    """Zip archives; unix modes (exec bits, symlinks) come from ``external_attr``."""

    suffix = ".zip"

    def _members(self, zf: zipfile.ZipFile) -> list[Member]:
        members = []
        for info in zf.infolist():
            kind = _zip_kind(info)
            link = zf.read(info).decode("utf-8") if kind is MemberKind.SYMLINK else ""
            members.append(Member(info.filename, kind, size=info.file_size, link=link))
        return members

    def scan(self, archive: Path) -> tuple[list[Member], str]:
        digest = sha256_file(archive)
        try:
            with zipfile.ZipFile(archive) as zf:
                return self._members(zf), digest
        except _CORRUPT as exc:
            raise ArchiveRefused(f"cannot be read as zip ({exc})") from None

    def extract(self, archive: Path, dest: Path, top: str) -> str:
        digest = sha256_file(archive)
        try:
            with zipfile.ZipFile(archive) as zf:
                # The file could have changed since it was scanned: check again what we write.
                check_members(self._members(zf), top)
                for info in zf.infolist():
                    self._extract_one(zf, info, dest, top)
        except UnsafeMember as exc:
            raise ArchiveRefused(str(exc)) from None
        except _CORRUPT as exc:
            raise ArchiveRefused(f"cannot be unpacked ({exc})") from None
        return digest

    def _extract_one(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, top: str
    ) -> None:
        relative = layer_relative(info.filename, top)
        if not relative:
            return
        path = dest / relative
        kind = _zip_kind(info)
        if kind is MemberKind.DIR:
            path.mkdir(parents=True, exist_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind is MemberKind.SYMLINK:
            os.symlink(zf.read(info).decode("utf-8"), path)
            return
        with zf.open(info) as source, path.open("wb") as target:
            shutil.copyfileobj(source, target, _CHUNK)
        executable = (info.external_attr >> 16) & 0o100
        path.chmod(0o755 if executable else 0o644)


FORMATS: dict[str, ArchiveFormat] = {
    fmt.suffix: fmt
    for fmt in (
        TarFormat(".tar.zst", "r|", _zstd),
        TarFormat(".tar.xz", "r|xz", _passthrough),
        TarFormat(".tar.gz", "r|gz", _passthrough),
        ZipFormat(),
    )
}


def format_for(archive: Path) -> ArchiveFormat:
    for suffix, fmt in FORMATS.items():
        if archive.name.endswith(suffix):
            return fmt
    known = ", ".join(FORMATS)
    raise ArchiveRefused(f"has an unknown archive format (expected one of {known})")


def inspect_archive(archive: Path, *, size: int, sha256: str, top: str) -> int:
    """Check ``archive`` against its published size and hash and scan all its members.

    Raises :class:`ArchiveRefused`; returns the number of members of the layer.
    """
    fmt = format_for(archive)
    try:
        actual_size = archive.stat().st_size
    except FileNotFoundError:
        raise ArchiveRefused("is missing") from None
    if actual_size != size:
        raise ArchiveRefused(f"has {actual_size} bytes, the metadata says {size}")
    try:
        members, digest = fmt.scan(archive)
    except ArchiveRefused:
        # A damaged file reads as garbage; the hash is the clearer reason when it differs.
        if sha256_file(archive) != sha256:
            raise ArchiveRefused("does not match its published sha256") from None
        raise
    if digest != sha256:
        raise ArchiveRefused("does not match its published sha256")
    try:
        count = check_members(members, top)
    except UnsafeMember as exc:
        raise ArchiveRefused(str(exc)) from None
    if count == 0:
        raise ArchiveRefused(f"has nothing in its layer folder {top!r}")
    return count


def extract_archive(archive: Path, dest: Path, *, sha256: str, top: str) -> None:
    """Unpack the layer folder ``top`` of an inspected archive into the existing ``dest``."""
    if format_for(archive).extract(archive, dest, top) != sha256:
        raise ArchiveRefused("changed while it was being unpacked")
