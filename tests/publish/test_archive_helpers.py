"""Synthetic layer folders and archive readers shared by the archive tests (no tests here)."""

from __future__ import annotations

import os
import random
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zstandard

from venvlayers import layout

MTIME = 1_700_000_000
ROOT = "framework-demo@2"
SITE = "lib/python3.11/site-packages"
TAR_FORMATS = ("tar.zst", "tar.xz", "tar.gz")
ALL_FORMATS = (*TAR_FORMATS, "zip")


def make_layer(folder: Path, *, outside: Path, seed: int = 0) -> Path:
    """A framework-like venv with every case the archive rules care about.

    ``outside`` is a folder beside the layer holding the "base interpreter" the venv's
    ``bin/python`` links point at. The content depends only on ``seed``, never on ``folder``.
    """
    rng = random.Random(seed)
    outside.mkdir(parents=True, exist_ok=True)
    base_python = outside / "python3.11"
    base_python.write_text("#!/bin/sh\n")
    pkg = folder / SITE / "pkg"
    pkg.mkdir(parents=True)
    _write(pkg / "__init__.py", "VALUE = 1\n")
    # Larger than one read block, and quick for xz to compress (repeats).
    _write(pkg / "data.bin", rng.randbytes(300 * 1024) * 4 + rng.randbytes(1001))
    _write(pkg / "shared.txt", "shared by group\n", mode=0o664)  # group-writable on disk
    os.link(pkg / "__init__.py", pkg / "hardlinked.py")
    _write(pkg / "libdemo.so", rng.randbytes(4096), mode=0o755)
    _write(pkg / "__pycache__" / "__init__.cpython-311.pyc", b"cache")
    _write(pkg / "stray.pyc", b"cache")
    _write(pkg / "nested" / "pyvenv.cfg", "kept: only the top-level one is build-only\n")
    # Longer than a ustar name field (100 bytes), and not ASCII: stored in pax headers.
    _write(pkg / ("deep_" * 12) / ("long_name_" * 8 + ".txt"), "deep\n")
    _write(pkg / "données" / "café.txt", "non-ASCII name\n")
    _write(folder / "bin" / "tool", "#!/bin/sh\necho tool\n", mode=0o750)
    (folder / "bin" / "python").symlink_to(base_python)
    (folder / "bin" / "python3").symlink_to("python")
    (folder / "bin" / "python3.11").symlink_to(base_python)
    (folder / "lib64").symlink_to("lib")
    dynlib = folder / layout.DYNLIB_DIR
    dynlib.mkdir(parents=True)
    # Absolute, into the layer: must come out relative.
    (dynlib / "libdemo.so").symlink_to(pkg / "libdemo.so")
    (folder / "include").mkdir()  # empty folder
    _write(folder / layout.LAYER_METADATA, '{"python": "bin/python"}\n')
    _write(folder / layout.POSTINSTALL_SCRIPT, "print('postinstall')\n")
    _write(folder / "pyvenv.cfg", f"home = {outside}\n")
    return folder


def _write(path: Path, content: str | bytes, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    path.chmod(mode)


@contextmanager
def open_tar(archive: Path) -> Iterator[tarfile.TarFile]:
    """A tar archive of any of our formats, read as a stream (as a deployment would)."""
    with archive.open("rb") as raw:
        if archive.name.endswith(".zst"):
            with (
                zstandard.ZstdDecompressor().stream_reader(raw) as stream,
                tarfile.open(fileobj=stream, mode="r|") as tar,
            ):
                yield tar
        else:
            with tarfile.open(fileobj=raw, mode="r|*") as tar:
                yield tar


def extract(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest`` the safe way; the layer folder it holds."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(dest)
    else:
        with open_tar(archive) as tar:
            tar.extractall(dest, filter="data")
    return dest / ROOT


def tar_members(archive: Path) -> list[tarfile.TarInfo]:
    with open_tar(archive) as tar:
        return list(tar)
