"""Reproducible tar streams, shared by every ``tar.*`` format.

Headers are encoded by :mod:`tarfile` (POSIX.1-2001 "pax" format, which stores long and
non-ASCII names the standard way), but content is streamed here in large blocks: tarfile's
own copy loop moves 16 KiB at a time, which costs more than the compression at fast levels.
Every header carries uid/gid 0, empty owner names, one mtime and a normalised mode.
"""

from __future__ import annotations

import tarfile
from abc import abstractmethod
from typing import IO, Protocol

from venvlayers.contract.layer_files import EXECUTABLE_MODE, REGULAR_MODE
from venvlayers.publish.formats.base import ArchiveFormat, ArchiveWriter, Chunks

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
# Small members are gathered into one write of this size: each call into a compressor
# has a fixed cost that dominates for the many tiny files of a Python environment.
_GATHER = 1 << 20


class CompressedStream(Protocol):
    def write(self, data: bytes | bytearray, /) -> int: ...

    def close(self) -> None: ...


class TarFormat(ArchiveFormat):
    @abstractmethod
    def compress(self, out: IO[bytes]) -> CompressedStream:
        """A compressing stream onto ``out``; closing it ends the compressed data, not ``out``."""

    def open(self, out: IO[bytes], *, mtime: int) -> ArchiveWriter:
        return TarWriter(self.compress(out), mtime=mtime)


class TarWriter(ArchiveWriter):
    def __init__(self, stream: CompressedStream, *, mtime: int) -> None:
        self._stream = stream
        self._mtime = int(mtime)
        self._pending = bytearray()
        self._offset = 0

    def add_directory(self, name: str) -> None:
        self._write(self._header(name, tarfile.DIRTYPE, EXECUTABLE_MODE))

    def add_symlink(self, name: str, target: str) -> None:
        self._write(self._header(name, tarfile.SYMTYPE, 0o777, linkname=target))

    def add_file(self, name: str, *, size: int, executable: bool, chunks: Chunks) -> None:
        mode = EXECUTABLE_MODE if executable else REGULAR_MODE
        self._write(self._header(name, tarfile.REGTYPE, mode, size=size))
        written = 0
        for chunk in chunks:
            written += len(chunk)
            self._write(chunk)
        if written != size:
            raise ValueError(f"{name}: {written} bytes streamed for a {size}-byte header")
        self._pad(_BLOCK)

    def finish(self) -> None:
        # End of archive: two zero blocks, then zeros up to a whole record, as tar(1) writes.
        self._write(bytes(2 * _BLOCK))
        self._pad(_RECORD)
        self._flush()
        self._stream.close()

    def _header(
        self, name: str, kind: bytes, mode: int, *, size: int = 0, linkname: str = ""
    ) -> bytes:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.size = size
        info.linkname = linkname
        info.mtime = self._mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def _pad(self, unit: int) -> None:
        remainder = self._offset % unit
        if remainder:
            self._write(bytes(unit - remainder))

    def _write(self, data: bytes | bytearray) -> None:
        self._offset += len(data)
        if len(data) >= _GATHER:
            self._flush()
            self._stream.write(data)
            return
        self._pending += data
        if len(self._pending) >= _GATHER:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            # Handed over, not copied: every compressor consumes its input before returning.
            self._stream.write(self._pending)
            self._pending = bytearray()
