"""``tar.gz``: for consumers without zstd or xz; single-threaded stdlib :mod:`gzip`."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import IO

from venvlayers.publish.formats.tar import CompressedStream, TarFormat


@dataclass(frozen=True)
class TarGz(TarFormat):
    name = "tar.gz"
    extension = ".tar.gz"
    # gzip(1)'s default: level 9 is several times slower for about 1% less.
    level: int = 6

    def compress(self, out: IO[bytes]) -> CompressedStream:
        # mtime=0 and an empty file name keep the gzip header free of build-time details.
        return gzip.GzipFile(filename="", mode="wb", compresslevel=self.level, fileobj=out, mtime=0)
