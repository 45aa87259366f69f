"""``tar.xz``: the smallest archives, single-threaded and slow (stdlib :mod:`lzma`)."""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from typing import IO

from venvlayers.publish.formats.tar import CompressedStream, TarFormat


@dataclass(frozen=True)
class TarXz(TarFormat):
    name = "tar.xz"
    extension = ".tar.xz"
    preset: int = 6  # xz's own default

    def compress(self, out: IO[bytes]) -> CompressedStream:
        # Closing an LZMAFile given a file object ends the xz stream and leaves ``out`` open.
        return lzma.LZMAFile(
            out, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=self.preset
        )
