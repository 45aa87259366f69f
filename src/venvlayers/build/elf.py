"""What the dynamic loader reads from an ELF shared object: SONAME, NEEDED and search paths.

Only the ELF header, the program headers and the dynamic segment (with its string table)
are read, from the open file: a 1 GB ``libtorch_cuda.so`` costs a few small reads.
"""

from __future__ import annotations

import platform
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

ELF_MAGIC = b"\x7fELF"
_TEXT_TAGS = frozenset({"DT_NEEDED", "DT_SONAME", "DT_RPATH", "DT_RUNPATH"})


@dataclass(frozen=True, kw_only=True)
class ElfDynamic:
    """The dynamic-linking entries of one ELF file."""

    soname: str | None
    needed: tuple[str, ...]
    # DT_RPATH and DT_RUNPATH entries as written ($ORIGIN not expanded), RPATH first.
    search_path: tuple[str, ...]


def read_elf_dynamic(path: Path) -> ElfDynamic | None:
    """The file's dynamic entries; None when it is not an ELF file pyelftools can read."""
    try:
        with path.open("rb") as stream:
            if stream.read(4) != ELF_MAGIC:
                return None
            stream.seek(0)
            return _read(ELFFile(stream))
    except (OSError, ELFError, struct.error, ValueError):
        # A truncated or foreign file with the magic is no library the loader would use
        # either; the caller treats it like any non-ELF file.
        return None


def resolves_itself(path: Path, info: ElfDynamic, needed: str) -> bool:
    """Whether the file's own RPATH/RUNPATH finds ``needed`` (a name without ``/``)."""
    origin = str(path.parent)
    return any((Path(folder) / needed).is_file() for folder in _expand(info.search_path, origin))


def _read(elf: ELFFile) -> ElfDynamic:
    soname: str | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    for segment in elf.iter_segments(type="PT_DYNAMIC"):
        assert isinstance(segment, DynamicSegment)
        for tag in segment.iter_tags():
            kind = tag.entry.d_tag
            if kind not in _TEXT_TAGS:
                continue
            # pyelftools sets the decoded string as an attribute named after the tag.
            text = str(getattr(tag, kind.removeprefix("DT_").lower()))
            if kind == "DT_NEEDED":
                needed.append(text)
            elif kind == "DT_SONAME":
                soname = text
            elif kind == "DT_RPATH":
                rpath.extend(text.split(":"))
            else:
                runpath.extend(text.split(":"))
    return ElfDynamic(soname=soname, needed=tuple(needed), search_path=(*rpath, *runpath))


def _expand(entries: tuple[str, ...], origin: str) -> Iterator[str]:
    """The folders the loader would try, with the dynamic string tokens it knows."""
    for entry in entries:
        if not entry:
            continue  # an empty entry means the process's current folder: never the layer's
        entry = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        entry = entry.replace("${PLATFORM}", platform.machine())
        entry = entry.replace("$PLATFORM", platform.machine())
        if "$LIB" in entry or "${LIB}" in entry:
            for lib in ("lib64", "lib"):
                yield entry.replace("${LIB}", lib).replace("$LIB", lib)
        else:
            yield entry
