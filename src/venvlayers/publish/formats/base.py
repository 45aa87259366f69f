"""The interface every archive format implements; the archive core drives it.

The core walks the layer, reads and hashes each file once, and hands the writer full member
names (``<root_name>/<path>``) in archive order. A writer only encodes members: it never
looks at the file system, so a new format is one small class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import IO, ClassVar

Chunks = Iterable[bytes]


class ArchiveWriter(ABC):
    """Encodes members into one archive; ``finish`` completes it without closing the output."""

    @abstractmethod
    def add_directory(self, name: str) -> None: ...

    @abstractmethod
    def add_symlink(self, name: str, target: str) -> None: ...

    @abstractmethod
    def add_file(self, name: str, *, size: int, executable: bool, chunks: Chunks) -> None:
        """Store a file of exactly ``size`` bytes, streamed from ``chunks``."""

    @abstractmethod
    def finish(self) -> None: ...


class ArchiveFormat(ABC):
    """A named archive format; instances are immutable settings (compression level, ...)."""

    name: ClassVar[str]
    extension: ClassVar[str]
    # Writers that go back to patch headers (zip) need a seekable output; the others get a
    # write-only stream that hashes the archive as it is written, saving a second read.
    needs_seekable_output: ClassVar[bool] = False

    @abstractmethod
    def open(self, out: IO[bytes], *, mtime: int) -> ArchiveWriter:
        """A writer whose members all carry ``mtime`` (seconds since the epoch)."""
