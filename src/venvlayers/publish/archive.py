"""Reproducible layer archives: one folder in, one archive file out, written atomically.

Each file of the layer is read once: the same blocks are hashed for the layer manifest and
handed to the format's writer. The manifest goes into the archive as an in-memory member
(last, after every file it describes), so publishing never writes into the layer folder.
Several layers are archived at once on a thread pool; zstd, hashlib and file reads release
the GIL, so the threads do run in parallel.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

from venvlayers import layout
from venvlayers._fs import sha256_file
from venvlayers.contract.layer_files import EntryKind, LayerEntry, scan_layer
from venvlayers.contract.manifest import (
    file_record,
    manifest_bytes,
    manifest_document,
    symlink_record,
)
from venvlayers.errors import PublishError
from venvlayers.publish.bytecode import with_bytecode
from venvlayers.publish.formats import DEFAULT_FORMAT, FORMATS, ArchiveFormat, ArchiveWriter

__all__ = [
    "FORMATS",
    "ArchiveRequest",
    "ArchiveResult",
    "ProgressFactory",
    "write_layer_archive",
    "write_layer_archives",
]

Progress = Callable[[int], None]
_READ_BLOCK = 1 << 20
# Progress is reported in steps of this many bytes: often enough for a smooth bar, rarely
# enough that a layer of 30,000 small files does not make 30,000 calls into the UI.
_PROGRESS_STEP = 4 << 20
_ARCHIVE_MODE = 0o644


@dataclass(frozen=True)
class ArchiveResult:
    path: Path
    size: int
    sha256: str
    # The layer manifest the archive carries, as written into it.
    manifest: bytes = b""


@dataclass(frozen=True)
class ArchiveRequest:
    layer_dir: Path
    dest: Path
    root_name: str
    mtime: int
    # A name from FORMATS, or a format instance with non-default settings.
    fmt: str | ArchiveFormat = DEFAULT_FORMAT
    # A delta archive: only these files and symlinks of the layer (layer-relative paths),
    # the whole layer's manifest given here, and more files added as they are.
    only: frozenset[str] | None = None
    manifest: bytes | None = None
    extra_files: tuple[tuple[str, bytes], ...] = ()
    # Members from outside the layer folder: its bytecode (publish/bytecode.py).
    bytecode: tuple[LayerEntry, ...] = ()


class ProgressFactory(Protocol):
    """Makes one progress callback per archive; ``total`` is the layer's bytes of file content."""

    def __call__(self, label: str, total: int) -> Progress: ...


def write_layer_archive(
    layer_dir: Path,
    dest: Path,
    *,
    root_name: str,
    fmt: str | ArchiveFormat = DEFAULT_FORMAT,
    mtime: int,
    progress: Progress | None = None,
) -> ArchiveResult:
    """Archive ``layer_dir`` to ``dest`` with every member under ``root_name/``.

    ``progress(n)`` is called with increments: ``n`` more bytes of file content consumed.
    Every member gets ``mtime`` as its modification time (see docs/archives.md).
    """
    request = ArchiveRequest(layer_dir=layer_dir, dest=dest, root_name=root_name, mtime=mtime)
    return _write_archive(scan_layer(layer_dir), request, resolve_format(fmt), _Meter(progress))


def write_layer_archives(
    requests: Sequence[ArchiveRequest],
    *,
    jobs: int | None = None,
    progress: ProgressFactory | None = None,
) -> list[ArchiveResult]:
    """Write every requested archive, ``jobs`` at a time; results in request order.

    Every layer is scanned before any archive is written, so an unpublishable layer (a link
    leaving it, an unknown format) stops the run before it spends minutes compressing.
    """
    _check_distinct(requests)
    formats = [resolve_format(request.fmt) for request in requests]
    scans = [
        _selected(with_bytecode(scan_layer(request.layer_dir), request.bytecode), request.only)
        for request in requests
    ]
    totals = [input_size(entries) for entries in scans]
    callbacks = [
        progress(request.root_name, total) if progress is not None else None
        for request, total in zip(requests, totals, strict=True)
    ]
    workers = max(1, min(jobs or default_jobs(), len(requests)))
    # Set when one archive fails (or on Ctrl-C): the others stop at their next block
    # instead of compressing on for minutes before the error is reported.
    stop = threading.Event()

    def write(index: int) -> ArchiveResult:
        request = requests[index]
        meter = _Meter(callbacks[index], stop)
        return _write_archive(scans[index], request, formats[index], meter)

    # Largest first: the pool finishes sooner when the long jobs start early.
    order = sorted(range(len(requests)), key=lambda index: -totals[index])
    if workers == 1:
        results = {index: write(index) for index in order}
        return [results[index] for index in range(len(requests))]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="venvlayers-archive") as pool:
        futures = {index: pool.submit(write, index) for index in order}
        try:
            done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C while waiting
            stop.set()
            raise
        # The first failure is the one to report; the archives stopped because of it are not.
        failed = [future for future in done if future.exception() is not None]
        if failed:
            stop.set()
            for future in futures.values():
                future.cancel()
            raise cast(BaseException, failed[0].exception())
        return [futures[index].result() for index in range(len(requests))]


def default_jobs() -> int:
    """One archive per CPU: each zstd compressor also spreads over every CPU, but the
    reading, hashing and tar framing of one layer run on one thread."""
    return os.cpu_count() or 1


def resolve_format(fmt: str | ArchiveFormat) -> ArchiveFormat:
    if isinstance(fmt, ArchiveFormat):
        return fmt
    try:
        return FORMATS[fmt]
    except KeyError:
        raise PublishError(
            f"unknown archive format {fmt!r} (choose: {', '.join(FORMATS)})"
        ) from None


def input_size(entries: Sequence[LayerEntry]) -> int:
    return sum(entry.size for entry in entries if entry.kind is EntryKind.FILE)


def _check_distinct(requests: Sequence[ArchiveRequest]) -> None:
    seen: set[Path] = set()
    for request in requests:
        dest = Path(os.path.abspath(request.dest))
        if dest in seen:
            raise PublishError(f"{request.dest}: two layers would be archived to the same file")
        seen.add(dest)


def _check_root_name(root_name: str) -> None:
    if not root_name or root_name in (".", "..") or "/" in root_name or "\\" in root_name:
        raise PublishError(
            f"archive root folder {root_name!r} must be one plain folder name "
            "(the layer's install_target)"
        )


def _selected(entries: list[LayerEntry], only: frozenset[str] | None) -> list[LayerEntry]:
    """All entries, or those ``only`` names with the folders above them (a delta)."""
    if only is None:
        return entries
    folders = {parent for path in only for parent in _parents(path)}
    return [
        entry
        for entry in entries
        if entry.path in (folders if entry.kind is EntryKind.DIRECTORY else only)
    ]


def _parents(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        yield path


def _write_archive(
    entries: Sequence[LayerEntry],
    request: ArchiveRequest,
    archive_format: ArchiveFormat,
    meter: _Meter,
) -> ArchiveResult:
    dest, root_name, mtime = request.dest, request.root_name, request.mtime
    _check_root_name(root_name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = None if archive_format.needs_seekable_output else _HashingSink(raw)
            # The sink is duck-typed: compressors only call write() on it.
            writer = archive_format.open(cast(IO[bytes], hashing or raw), mtime=mtime)
            manifest = _emit_members(writer, entries, request, meter)
            writer.finish()
            raw.flush()
            os.fsync(raw.fileno())
        if hashing is not None:
            size, sha256 = hashing.size, hashing.digest.hexdigest()
        else:
            size, sha256 = tmp.stat().st_size, sha256_file(tmp)
        tmp.chmod(_ARCHIVE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ArchiveResult(dest, size, sha256, manifest)


def _emit_members(
    writer: ArchiveWriter, entries: Sequence[LayerEntry], request: ArchiveRequest, meter: _Meter
) -> bytes:
    root_name = request.root_name
    writer.add_directory(root_name)
    records: list[dict[str, Any]] = []
    kinds: dict[str, EntryKind] = {}
    for entry in entries:
        name = f"{root_name}/{entry.path}"
        kinds[entry.path] = entry.kind
        if entry.kind is EntryKind.DIRECTORY:
            writer.add_directory(name)
        elif entry.kind is EntryKind.SYMLINK:
            writer.add_symlink(name, entry.link)
            records.append(symlink_record(entry))
        else:
            digest = hashlib.sha256()
            chunks = _read_hashed(entry, digest, meter)
            writer.add_file(name, size=entry.size, executable=entry.executable, chunks=chunks)
            records.append(file_record(entry, digest.hexdigest()))
    manifest = request.manifest or manifest_bytes(manifest_document(records))
    _emit_manifest(writer, manifest, kinds, root_name)
    # After the manifest, whose folders they share (share/venv/metadata/).
    for path, data in request.extra_files:
        writer.add_file(f"{root_name}/{path}", size=len(data), executable=False, chunks=(data,))
    meter.flush()
    return manifest


def _emit_manifest(
    writer: ArchiveWriter, data: bytes, kinds: dict[str, EntryKind], root_name: str
) -> None:
    parents = layout.LAYER_MANIFEST.split("/")[:-1]
    for depth in range(1, len(parents) + 1):
        folder = "/".join(parents[:depth])
        kind = kinds.get(folder)
        if kind is None:
            writer.add_directory(f"{root_name}/{folder}")
        elif kind is not EntryKind.DIRECTORY:
            raise PublishError(
                f"{root_name}: {folder} must be a folder (the layer manifest goes in it)"
            )
    writer.add_file(
        f"{root_name}/{layout.LAYER_MANIFEST}", size=len(data), executable=False, chunks=(data,)
    )


def _read_hashed(entry: LayerEntry, digest: Any, meter: _Meter) -> Iterator[bytes]:
    """The file's first ``entry.size`` bytes (its size when scanned), hashed on the way."""
    remaining = entry.size
    try:
        stream = open(entry.source, "rb", buffering=0)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise PublishError(f"{entry.source}: cannot read: {exc.strerror}") from exc
    with stream:
        while remaining:
            block = stream.read(min(_READ_BLOCK, remaining))
            if not block:
                raise PublishError(
                    f"{entry.source}: file shrank while it was archived; "
                    "publish again once the build is finished"
                )
            digest.update(block)
            remaining -= len(block)
            meter.advance(len(block))
            yield block


class _Meter:
    """Counts the bytes read: batches progress increments into steps of ``_PROGRESS_STEP``
    bytes, and stops the archive when ``stop`` is set."""

    def __init__(self, progress: Progress | None, stop: threading.Event | None = None) -> None:
        self._progress = progress
        self._stop = stop
        self._pending = 0

    def advance(self, count: int) -> None:
        if self._stop is not None and self._stop.is_set():
            raise PublishError("archive not finished: another layer's archive failed")
        if self._progress is None:
            return
        self._pending += count
        if self._pending >= _PROGRESS_STEP:
            self.flush()

    def flush(self) -> None:
        if self._progress is not None and self._pending:
            self._progress(self._pending)
            self._pending = 0


class _HashingSink(io.RawIOBase):
    """A write-only stream that passes data on and hashes it: the archive's sha256 and size
    come for free instead of from a second read of the finished file."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        count = memoryview(data).nbytes
        self._raw.write(data)
        self.digest.update(data)
        self.size += count
        return count
