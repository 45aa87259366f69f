"""``tar.zst``: the default format, multi-threaded zstandard with long distance matching.

Level 10 with a 128 MiB window (``window_log=27``, as ``zstd --long=27``) is the knee of the
curve on Python environments: archives 1.16-1.18x the size of ``tar.xz`` at 20x its speed on
two cores; level 9 crosses 1.2x, and each level above costs about 25% more CPU time for under
1% fewer bytes (figures in docs/benchmarks.md). A 2**27 window is also the largest that every
zstd decoder accepts without being told to allow more memory.

The output is byte-identical for any number of worker threads (zstd's streaming
multi-threaded mode cuts jobs at fixed input positions), so ``threads=-1`` (one per CPU)
does not make archives depend on the machine; it differs from single-threaded output, which
is why the mode is always multi-threaded, even on one CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import zstandard

from venvlayers.publish.formats.tar import CompressedStream, TarFormat

DEFAULT_LEVEL = 10
DEFAULT_WINDOW_LOG = 27
_OUTPUT_BLOCK = 1 << 20


@dataclass(frozen=True)
class TarZst(TarFormat):
    name = "tar.zst"
    extension = ".tar.zst"
    level: int = DEFAULT_LEVEL
    window_log: int = DEFAULT_WINDOW_LOG
    threads: int = -1

    def compress(self, out: IO[bytes]) -> CompressedStream:
        # threads must stay >= 1: 0 selects single-threaded mode, whose output differs.
        params = zstandard.ZstdCompressionParameters.from_level(
            self.level,
            window_log=self.window_log,
            enable_ldm=True,
            threads=self.threads,
            write_checksum=True,
        )
        compressor = zstandard.ZstdCompressor(compression_params=params)
        stream: CompressedStream = compressor.stream_writer(
            out, write_size=_OUTPUT_BLOCK, closefd=False
        )
        return stream
