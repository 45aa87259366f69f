"""``zip``: deflate-compressed zip (zlib's default level), for hosts without a tar.zst reader.

Members are stored with Unix attributes (``create_system`` 3), so ``unzip`` and most
extractors restore the executable bit and symlinks. Zip timestamps are wall-clock times
without a zone and start in 1980; the archive time is the UTC time of ``mtime``, clamped
into the range zip can hold.
"""

from __future__ import annotations

import stat
import time
import zipfile
from dataclasses import dataclass
from typing import IO

from venvlayers.contract.layer_files import EXECUTABLE_MODE, REGULAR_MODE
from venvlayers.publish.formats.base import ArchiveFormat, ArchiveWriter, Chunks

_UNIX = 3
_MSDOS_DIRECTORY = 0x10
_EARLIEST = (1980, 1, 1, 0, 0, 0)
_LATEST = (2107, 12, 31, 23, 59, 58)
ZipTime = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class Zip(ArchiveFormat):
    name = "zip"
    extension = ".zip"
    needs_seekable_output = True

    def open(self, out: IO[bytes], *, mtime: int) -> ArchiveWriter:
        return ZipWriter(out, date_time=zip_time(mtime))


def zip_time(mtime: int) -> ZipTime:
    utc = time.gmtime(mtime)
    moment: ZipTime = (utc.tm_year, utc.tm_mon, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec)
    return min(max(moment, _EARLIEST), _LATEST)


class ZipWriter(ArchiveWriter):
    def __init__(self, out: IO[bytes], *, date_time: ZipTime) -> None:
        self._zip = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        self._date_time = date_time

    def add_directory(self, name: str) -> None:
        info = self._info(f"{name}/", stat.S_IFDIR | EXECUTABLE_MODE, zipfile.ZIP_STORED)
        info.external_attr |= _MSDOS_DIRECTORY
        self._zip.writestr(info, b"")

    def add_symlink(self, name: str, target: str) -> None:
        info = self._info(name, stat.S_IFLNK | 0o777, zipfile.ZIP_STORED)
        self._zip.writestr(info, target.encode("utf-8"))

    def add_file(self, name: str, *, size: int, executable: bool, chunks: Chunks) -> None:
        mode = EXECUTABLE_MODE if executable else REGULAR_MODE
        info = self._info(name, stat.S_IFREG | mode, zipfile.ZIP_DEFLATED)
        info.file_size = size  # lets zipfile choose zip64 headers up front for large files
        with self._zip.open(info, "w") as member:
            for chunk in chunks:
                member.write(chunk)

    def finish(self) -> None:
        self._zip.close()

    def _info(self, name: str, mode: int, compression: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.create_system = _UNIX
        info.external_attr = mode << 16
        info.compress_type = compression
        return info
