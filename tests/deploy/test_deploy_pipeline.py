"""Unpacking as a pipeline: a reader thread decompresses, writer threads write files; the
result is the same as one thread's, memory stays bounded and no thread outlives a layer."""

from __future__ import annotations

import compileall
import hashlib
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.deploy.deploy_support import tar_entry, write_archive
from venvlayers._fs import sha256_file
from venvlayers.deploy import layer_writer
from venvlayers.deploy.archive_io import _Prefetched
from venvlayers.deploy.compile import EarlyCompiler
from venvlayers.deploy.extract import (
    ArchiveRefused,
    CheckedArchive,
    check_archive,
    extract_archive,
    free_space,
)
from venvlayers.deploy.store import Store

TOP = "framework-big"


def _ours() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("venvlayers-")]


def _entries(big: bytes, count: int) -> list[tuple[tarfile.TarInfo, bytes]]:
    entries = [tar_entry(TOP, tarfile.DIRTYPE), tar_entry(f"{TOP}/pkg", tarfile.DIRTYPE)]
    for index in range(count):
        entries.append(tar_entry(f"{TOP}/pkg/m{index:04}.py", data=f"X = {index}\n".encode()))
    entries.append(tar_entry(f"{TOP}/pkg/big.so", data=big, mode=0o755))
    entries.append(tar_entry(f"{TOP}/pkg/same.py", data=b"X = 7\n"))
    entries.append(tar_entry(f"{TOP}/pkg/link.py", tarfile.LNKTYPE, link=f"{TOP}/pkg/m0001.py"))
    return entries


def _check(archive: Path, dest: Path) -> CheckedArchive:
    return check_archive(
        archive,
        size=archive.stat().st_size,
        sha256=sha256_file(archive),
        top=TOP,
        root=None,
        space=free_space(dest),
    )


def test_many_files_and_one_larger_than_the_bytes_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small bounds, so the writers and the reader wait on each other many times.
    monkeypatch.setattr(layer_writer, "_IN_FLIGHT", 1 << 16)
    big = bytes(range(256)) * (5 << 12)  # 5 MiB, more than the bytes allowed in flight
    archive = write_archive(tmp_path / f"{TOP}.tar.zst", _entries(big, 300))
    dest = tmp_path / "dest"
    dest.mkdir()
    checked = _check(archive, dest)
    try:
        writer = layer_writer.LayerWriter(dest, store=Store(tmp_path / "target"))
        unpacked = checked.extract(dest, writer=writer)
    finally:
        checked.close()
    assert (dest / "pkg/big.so").read_bytes() == big
    assert unpacked.entries["pkg/big.so"].sha256 == hashlib.sha256(big).hexdigest()
    for index in range(300):
        path = f"pkg/m{index:04}.py"
        assert (dest / path).read_text() == f"X = {index}\n"
        assert unpacked.entries[path].sha256 == sha256_file(dest / path)
    # Same content twice: one store entry, both files links to it.
    assert (dest / "pkg/same.py").stat().st_ino == (dest / "pkg/m0007.py").stat().st_ino
    assert (dest / "pkg/link.py").read_text() == "X = 1\n"
    assert set(unpacked.keys) == set(unpacked.entries)
    assert _ours() == []


def test_a_refusal_in_the_middle_stops_every_thread(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / f"{TOP}.tar.zst", _entries(b"x" * (3 << 20), 50))
    digest = sha256_file(archive)
    write_archive(archive, [*_entries(b"y" * (3 << 20), 50)[:-1]])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveRefused):
        extract_archive(archive, dest, sha256=digest, top=TOP)
    assert _ours() == []


def test_a_writer_failure_reaches_the_reader(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / f"{TOP}.tar.zst", _entries(b"z" * 100, 20))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "pkg").mkdir()
    (dest / "pkg/m0005.py").write_text("in the way")  # created exclusively: refused
    checked = _check(archive, dest)
    try:
        # Raised on a writer thread, reported by the reading one, as before the threads.
        with pytest.raises(ArchiveRefused, match="File exists"):
            checked.extract(dest)
    finally:
        checked.close()
    assert _ours() == []


def test_the_reader_thread_passes_errors_and_stops_early() -> None:
    class Failing:
        def __init__(self) -> None:
            self.reads = 0

        def read(self, size: int) -> bytes:
            self.reads += 1
            if self.reads == 3:
                raise ValueError("damaged")
            return b"a" * size

    with _Prefetched(Failing()) as stream:  # type: ignore[arg-type]
        assert stream.read(10) == b"a" * 10
        with pytest.raises(ValueError, match="damaged"):
            while stream.read(1 << 20):
                pass

    class Endless:
        def read(self, size: int) -> bytes:
            return b"b" * size

    with _Prefetched(Endless()) as stream:  # type: ignore[arg-type]
        assert stream.read(5) == b"bbbbb"
    assert _ours() == []


def test_early_compiling_makes_current_bytecode_of_site_packages_only(tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    package = partial / "lib/python3.x/site-packages/pkg"
    (package / "tests").mkdir(parents=True)
    sources = {
        "lib/python3.x/site-packages/pkg/a.py": "A = 1\n",
        "lib/python3.x/site-packages/pkg/tests/test_a.py": "T = 1\n",
        "postinstall.py": "P = 1\n",
    }
    for relative, text in sources.items():
        (partial / relative).write_text(text)
    in_place = threading.Event()
    early = EarlyCompiler(partial, lambda: Path(sys.executable) if in_place.is_set() else None)
    for relative in sources:
        early.written(relative)
    in_place.set()  # the runtime arrives after the first files
    pyc = package / "__pycache__" / f"a.{sys.implementation.cache_tag}.pyc"
    deadline = time.monotonic() + 30
    while not pyc.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    early.stop()
    assert pyc.exists()
    assert not (package / "tests/__pycache__").exists()
    assert not (partial / "__pycache__").exists()
    # Current bytecode: compiling the placed layer leaves it as it is.
    before = pyc.stat().st_mtime_ns
    assert compileall.compile_file(str(package / "a.py"), quiet=2)
    assert pyc.stat().st_mtime_ns == before
    assert _ours() == []


def test_early_compiling_stops_at_once_without_an_interpreter(tmp_path: Path) -> None:
    early = EarlyCompiler(tmp_path, lambda: None)
    early.written("lib/python3.x/site-packages/a.py")
    started = time.monotonic()
    early.stop()
    assert time.monotonic() - started < 5
    assert _ours() == []
