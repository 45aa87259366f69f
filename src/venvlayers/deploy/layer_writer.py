"""Writing one layer's members into its partial folder: described, bounded, through the store."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import queue
import stat
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from venvlayers import layout
from venvlayers._fs import sha256_file
from venvlayers.contract.manifest import MAX_MANIFEST_BYTES, ManifestItem, read_manifest
from venvlayers.deploy.archive_io import (
    Data,
    _bounded_chunks,
)
from venvlayers.deploy.files import Entry, StatKey, stat_key
from venvlayers.deploy.members import (
    Member,
)
from venvlayers.deploy.store import Store, StoreKey, entry_mode
from venvlayers.errors import MetadataError


class LayerWriter:
    """Writes checked members into ``dest``, never more bytes than a member declares.

    Symlinks are made last, so nothing is ever written through one; files are created
    exclusively and without following a link, a second line behind the member checks.
    What was unpacked is described (``entries``, and the stat keys that show a later
    change without reading), each file hashed as it is written unless ``digests_later``.

    With a ``store``, each file written becomes a store entry (it is complete and hashed
    before its name appears there), and a file whose entry is ``ready`` (by path: the key
    the layer's manifest gives it, already in the store and checked) is not written at
    all: its data is read past and the entry placed instead, provided the member has the
    size ``sizes`` gives (when it gives one) and the entry's execute bit. ``skip`` names
    files read past and left out (a delta's descriptor). ``before_put`` is called before a
    written file enters the store (the step hook); ``on_written`` with each file once it
    is complete (from a writer thread); ``on_bytecode`` once, before the first file in a
    ``__pycache__`` folder is written.

    ``digests_later``: files are written without being hashed, and neither described nor
    stored until :meth:`settle`, which the caller calls once the archive's sha256 matched
    its metadata. Each file then takes the sha256 that the archive's own manifest gives
    it (that hash binds the manifest), and a file the manifest does not describe with its
    size and execute bit is hashed from disk (an archive without one: venvstacks'). That
    spares hashing a layer's bytes twice, once as the archive and once as its files. The
    store entries so made are not taken as checked: like any entry, one is hashed before
    another layer uses it, so a manifest that lies spoils nothing but its own layer, whose
    file record then shows the difference to ``verify``.
    """

    def __init__(
        self,
        dest: Path,
        *,
        store: Store | None = None,
        ready: dict[str, StoreKey] | None = None,
        skip: Collection[str] = (),
        sizes: Mapping[str, int] | None = None,
        before_put: Callable[[], None] | None = None,
        on_written: Callable[[str], None] | None = None,
        on_bytecode: Callable[[], None] | None = None,
        digests_later: bool = False,
    ) -> None:
        self._dest = os.fspath(dest)
        self._on_written = on_written
        self._on_bytecode = on_bytecode
        self._sizes = sizes or {}
        self._folders = {""}
        self._symlinks: list[tuple[str, str]] = []
        self._store = store
        self._ready = ready or {}
        self._skip = skip
        self._before_put = before_put
        self.entries: dict[str, Entry] = {}
        self.keys: dict[str, StatKey] = {}
        self._writers = _Writers(self._write)
        self._digests_later = digests_later
        # With digests_later: the files written unhashed, the hard links to make once they
        # are stored, and the manifest's bytes as they went by (None: too large to keep).
        self._unhashed: list[_FileJob] = []
        self._hard_links: list[tuple[str, str]] = []
        self._manifest: bytearray | None = None

    def close(self) -> None:
        """Stop the writer threads (after a failure: files being written are left half
        written, in a folder the caller discards)."""
        self._writers.close()

    def _path(self, relative: str) -> str:
        return os.path.join(self._dest, relative)

    def _parent(self, relative: str) -> None:
        parent = posixpath.dirname(relative)
        if parent in self._folders:
            return
        missing = []
        while parent not in self._folders:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        for folder in reversed(missing):
            self._make_folder(folder)

    def _make_folder(self, relative: str) -> None:
        path = self._path(relative)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        # Neither the umask nor the archive decides a folder's mode: every user runs the layer.
        os.chmod(path, 0o755, follow_symlinks=False)
        self._folders.add(relative)

    def folder(self, relative: str) -> None:
        if relative in self._folders:
            return
        self._parent(relative)
        self._make_folder(relative)

    def file(
        self,
        member: Member,
        relative: str,
        chunks: Iterator[Data],
        *,
        executable: bool,
        mtime: float | None = None,
    ) -> None:
        if relative in self._skip:
            for _chunk in _bounded_chunks(member, chunks):
                pass
            return
        self._parent(relative)
        if self._digests_later and relative == layout.LAYER_MANIFEST:
            chunks = self._kept_manifest(member, chunks)
        key = self._ready.get(relative)
        if (
            self._store is not None
            and key is not None
            and key[1] == executable
            and self._sizes.get(relative, member.size) == member.size
        ):
            # Read past, not hashed: the entry was checked against the manifest's hash,
            # and the archive's sha256 binds that manifest and this member alike.
            for _chunk in _bounded_chunks(member, chunks):
                pass
            self.placed(relative, key, member.size)
            return
        digest = ""
        if self._store is not None and self._store.had_entries and member.size <= _SMALL_FILE:
            # A small file is read whole before it is written anyway: if the store already
            # holds its content (a layer updated without a delta), it is linked, not
            # written. (A fresh store holds nothing: no file is hashed twice there.)
            data = b"".join(_bounded_chunks(member, chunks))
            digest = hashlib.sha256(data).hexdigest()
            if self._store.has_good((digest, executable)):
                self.placed(relative, (digest, executable), member.size)
                return
            chunks = iter([data])
        if self._on_bytecode is not None and "__pycache__" in relative.split("/"):
            self._on_bytecode()
            self._on_bytecode = None
        plain = 0o755 if executable else 0o644
        mode = entry_mode(executable) if self._store is not None else plain
        job = _FileJob(relative, mode, mtime, executable, member.size, digest)
        if self._digests_later and not digest:
            job.later = True
            self._unhashed.append(job)  # in archive order: settle() is then repeatable
        self._writers.submit(job)
        for chunk in _bounded_chunks(member, chunks):
            self._writers.feed(job, chunk)
        self._writers.feed(job, None)

    def _kept_manifest(self, member: Member, chunks: Iterator[Data]) -> Iterator[Data]:
        """``chunks``, kept in memory on the way to be read at :meth:`settle`."""
        kept = bytearray() if member.size <= MAX_MANIFEST_BYTES else None
        for chunk in chunks:
            if kept is not None:
                kept += chunk
            yield chunk
        self._manifest = kept

    def _write(self, job: _FileJob, chunks: Iterator[Data]) -> None:
        """Write one file (on a writer thread): create it, write and hash its chunks, store
        it. Hashing here, not where the archive is parsed, spreads it over the writers
        (hashlib frees the GIL)."""
        relative = job.relative
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._path(relative), flags, job.mode)
        digest = None if job.digest or job.later else hashlib.sha256()
        with open(fd, "wb", buffering=0, closefd=True) as out:
            for chunk in chunks:
                if digest is not None:
                    digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[out.write(view) or 0 :]
            # The umask must not decide a layer file's mode: every user runs the layer.
            os.fchmod(fd, job.mode)
            if job.mtime is not None:
                os.utime(fd, (job.mtime, job.mtime))
            if self._store is None:
                self.keys[relative] = stat_key(os.fstat(fd))
        if digest is not None:
            job.digest = digest.hexdigest()
        if not job.later:
            self._stored(job, checked=True)
        if self._on_written is not None:
            self._on_written(relative)

    def _stored(self, job: _FileJob, *, checked: bool) -> None:
        """Describe the written file ``job`` (its digest known), and make it a store entry."""
        self.entries[job.relative] = Entry("f", job.mode, job.size, job.digest)
        if self._store is None:
            return
        if self._before_put is not None:
            self._before_put()
        path = self._path(job.relative)
        self._store.put(path, (job.digest, job.executable), checked=checked)
        # After the put: it may have replaced the file by a link to the entry.
        self.keys[job.relative] = stat_key(os.lstat(path))

    def settle(self) -> None:
        """Give the files written unhashed (``digests_later``) their digests, store them,
        and make the hard links to them; call once the archive's sha256 matched."""
        self._writers.wait()
        unhashed, self._unhashed = self._unhashed, []
        described = self._described()
        # Paths are unique within a layer (the member checks refuse a second one).
        claimed: set[str] = set()
        undescribed: list[_FileJob] = []
        for job in unhashed:
            item = described.get(job.relative)
            if item is not None and (item.size, item.executable) == (job.size, job.executable):
                job.digest = item.sha256
                claimed.add(job.relative)
            else:
                undescribed.append(job)
        if undescribed:
            paths = [self._path(job.relative) for job in undescribed]
            with ThreadPoolExecutor(max_workers=_WRITERS) as pool:  # hashlib frees the GIL
                for job, digest in zip(undescribed, pool.map(sha256_file, paths), strict=True):
                    job.digest = digest
        # One after the other, in archive order: what each file ends up as never depends
        # on threads, and threads only fought over the GIL here (twice as slow).
        for job in unhashed:
            self._stored(job, checked=job.relative not in claimed)
        links, self._hard_links = self._hard_links, []
        for relative, target in links:
            self._link(relative, target)

    def _described(self) -> dict[str, ManifestItem]:
        """The archive's manifest, by path; nothing when it is missing, too large or not
        one (its files are then hashed)."""
        if self._manifest is None:
            return {}
        try:
            return read_manifest(bytes(self._manifest), layout.LAYER_MANIFEST)
        except MetadataError:
            return {}

    def placed(self, relative: str, key: StoreKey, size: int) -> None:
        """Make the file ``relative`` from the store entry ``key`` (checked by the caller)."""
        assert self._store is not None
        self._parent(relative)
        path = self._path(relative)
        self._store.place(key, path)
        self.entries[relative] = Entry("f", entry_mode(key[1]), size, key[0])
        self.keys[relative] = stat_key(os.lstat(path))
        if self._on_written is not None:
            self._on_written(relative)

    def hard_link(self, relative: str, target: str) -> None:
        self._parent(relative)
        if self._digests_later:
            # Linked once the file linked to is stored (it may become a link to its entry).
            self._hard_links.append((relative, target))
            return
        self._writers.wait()  # the file linked to is complete
        self._link(relative, target)

    def _link(self, relative: str, target: str) -> None:
        os.link(self._path(target), self._path(relative), follow_symlinks=False)
        self.entries[relative] = self.entries[target]
        self.keys[relative] = self.keys[target]

    def symlink(self, relative: str, link: str) -> None:
        self._symlinks.append((relative, link))

    def finish(self) -> None:
        """Make the symlinks and describe the folders; may be called again after more
        members were added."""
        self._writers.wait()
        self._writers.close()
        symlinks, self._symlinks = self._symlinks, []
        for relative, link in symlinks:
            self._parent(relative)
            path = self._path(relative)
            os.symlink(link, path)
            self.entries[relative] = Entry("l", link=link)
            self.keys[relative] = stat_key(os.lstat(path))
        for relative in self._folders:
            info = os.lstat(self._path(relative))
            self.entries[relative] = Entry("d", stat.S_IMODE(info.st_mode))
            self.keys[relative] = stat_key(info)


# Files written side by side, each by a thread of its own: creating a file and writing it
# often wait on the file system (its journal, the writeback of earlier files), and while
# one thread waits, the others and the archive's reader go on.
_WRITERS = 3
# Archive bytes handed to the writers and not written yet, at most: memory stays bounded
# whatever the size of the files.
_IN_FLIGHT = 32 << 20
# Files up to this size are hashed before they are written, where the store may hold them.
_SMALL_FILE = 1 << 20
# Pieces of data below this size are copied rather than passed on as views.
_SMALL = 64 << 10
# What each piece counts for beyond its bytes (a queue item, a job): many tiny files
# cannot pile up in flight.
_OVERHEAD = 1 << 10


class _Abort(Exception):
    """The layer is abandoned: a writer stops in the middle of its file."""


@dataclass(eq=False)
class _FileJob:
    relative: str
    mode: int
    mtime: float | None
    executable: bool
    size: int
    # Set when the file was hashed before it was handed on; otherwise by its writer, or
    # (``later``) at LayerWriter.settle.
    digest: str = ""
    later: bool = False
    # The file's chunks as they are read, each with what it counts against
    # :data:`_IN_FLIGHT`; ``None`` ends the file, an exception aborts it.
    chunks: queue.SimpleQueue[tuple[Data, int] | BaseException | None] = field(
        default_factory=queue.SimpleQueue
    )


class _Writers:
    """Threads writing files in the order given, while their chunks are still being read.

    Jobs are taken in order and fed in order, so only the newest job can still be waiting
    for chunks: the writers of the others always finish, and :meth:`feed`, which waits
    while too many bytes are in flight, cannot wait forever.
    """

    def __init__(self, write: Callable[[_FileJob, Iterator[Data]], None]) -> None:
        self._write = write
        self._jobs: queue.SimpleQueue[_FileJob | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._room = threading.Condition()
        self._bytes = 0
        self._pending = 0
        self._error: BaseException | None = None
        self._feeding: _FileJob | None = None

    def submit(self, job: _FileJob) -> None:
        self._check()
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._run, name="venvlayers-write", daemon=True)
                for _ in range(_WRITERS)
            ]
            for thread in self._threads:
                thread.start()
        with self._room:
            self._pending += 1
        self._feeding = job
        self._jobs.put(job)

    def feed(self, job: _FileJob, chunk: Data | None) -> None:
        if chunk is None:
            job.chunks.put(None)
            self._feeding = None
            return
        if isinstance(chunk, memoryview) and len(chunk) < _SMALL:
            # A small view would keep a whole decompressed chunk alive: copied instead.
            chunk = chunk.tobytes()
        # A view counts as the chunk it keeps alive; every piece counts for some overhead.
        cost = _OVERHEAD + (len(chunk.obj) if isinstance(chunk, memoryview) else len(chunk))  # type: ignore[arg-type]
        with self._room:
            while self._bytes >= _IN_FLIGHT and self._error is None:
                self._room.wait()
            self._check()
            self._bytes += cost
        job.chunks.put((chunk, cost))

    def wait(self) -> None:
        """Wait until every file submitted is written; raise what a writer raised."""
        with self._room:
            while self._pending and self._error is None:
                self._room.wait()
            self._check()

    def close(self) -> None:
        if not self._threads:
            return
        with self._room:
            if self._pending and self._error is None:
                self._error = _Abort()
        if self._feeding is not None:
            self._feeding.chunks.put(_Abort())
        for _thread in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _chunks(self, job: _FileJob) -> Iterator[Data]:
        while True:
            item = job.chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            chunk, cost = item
            yield chunk
            del chunk, item
            with self._room:
                self._bytes -= cost
                self._room.notify_all()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if self._error is None:
                    self._write(job, self._chunks(job))
            except BaseException as exc:  # raised again in the thread that feeds the writers
                with self._room:
                    if self._error is None:
                        self._error = exc
            finally:
                with self._room:
                    self._pending -= 1
                    self._room.notify_all()


@dataclass(frozen=True)
class Unpacked:
    """What an archive put into a folder: entries by layer-relative path (``""``: the
    folder itself), and their stat keys just after unpacking."""

    entries: dict[str, Entry]
    keys: dict[str, StatKey]
