"""Writing one layer's members into its partial folder: hashed, bounded, through the store."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from venvlayers.deploy.archive_io import (
    _bounded_chunks,
)
from venvlayers.deploy.files import Entry, StatKey, stat_key
from venvlayers.deploy.members import (
    Member,
)
from venvlayers.deploy.store import Store, StoreKey, entry_mode


class LayerWriter:
    """Writes checked members into ``dest``, never more bytes than a member declares.

    Symlinks are made last, so nothing is ever written through one; files are created
    exclusively and without following a link, a second line behind the member checks.
    Every file is hashed as it is written: what was unpacked is described (``entries``,
    and the stat keys that show a later change without reading) at no extra read.

    With a ``store``, each file written becomes a store entry (it is complete and hashed
    before its name appears there), and a file whose entry is ``ready`` (by path: the key
    the layer's manifest gives it, already in the store and checked) is not written at
    all: its data is read past and the entry placed instead. ``skip`` names files read
    past and left out (a delta's descriptor). ``before_put`` is called before a written
    file enters the store (the step hook).
    """

    def __init__(
        self,
        dest: Path,
        *,
        store: Store | None = None,
        ready: dict[str, StoreKey] | None = None,
        skip: Collection[str] = (),
        before_put: Callable[[], None] | None = None,
    ) -> None:
        self._dest = os.fspath(dest)
        self._folders = {""}
        self._symlinks: list[tuple[str, str]] = []
        self._store = store
        self._ready = ready or {}
        self._skip = skip
        self._before_put = before_put
        self.entries: dict[str, Entry] = {}
        self.keys: dict[str, StatKey] = {}

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
        chunks: Iterator[bytes],
        *,
        executable: bool,
        mtime: float | None = None,
    ) -> None:
        if relative in self._skip:
            for _chunk in _bounded_chunks(member, chunks):
                pass
            return
        self._parent(relative)
        if self._store is not None and relative in self._ready:
            key = self._ready[relative]
            # Read past, not hashed: the entry was checked against the manifest's hash,
            # and the archive's sha256 binds that manifest and this member alike.
            for _chunk in _bounded_chunks(member, chunks):
                pass
            self.placed(relative, key, member.size)
            return
        plain = 0o755 if executable else 0o644
        mode = entry_mode(executable) if self._store is not None else plain
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._path(relative), flags, mode)
        digest = hashlib.sha256()
        with open(fd, "wb", buffering=0, closefd=True) as out:
            for chunk in _bounded_chunks(member, chunks):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[out.write(view) or 0 :]
            # The umask must not decide a layer file's mode: every user runs the layer.
            os.fchmod(fd, mode)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            info = os.fstat(fd)
        self.entries[relative] = Entry("f", mode, member.size, digest.hexdigest())
        self.keys[relative] = stat_key(info)
        if self._store is not None:
            if self._before_put is not None:
                self._before_put()
            self._store.put(self._path(relative), (digest.hexdigest(), executable))
            self.keys[relative] = stat_key(os.lstat(self._path(relative)))

    def placed(self, relative: str, key: StoreKey, size: int) -> None:
        """Make the file ``relative`` from the store entry ``key`` (checked by the caller)."""
        assert self._store is not None
        self._parent(relative)
        path = self._path(relative)
        self._store.place(key, path)
        self.entries[relative] = Entry("f", entry_mode(key[1]), size, key[0])
        self.keys[relative] = stat_key(os.lstat(path))

    def hard_link(self, relative: str, target: str) -> None:
        self._parent(relative)
        os.link(self._path(target), self._path(relative), follow_symlinks=False)
        self.entries[relative] = self.entries[target]
        self.keys[relative] = self.keys[target]

    def symlink(self, relative: str, link: str) -> None:
        self._symlinks.append((relative, link))

    def finish(self) -> None:
        """Make the symlinks and describe the folders; may be called again after more
        members were added."""
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


@dataclass(frozen=True)
class Unpacked:
    """What an archive put into a folder: entries by layer-relative path (``""``: the
    folder itself), and their stat keys just after unpacking."""

    entries: dict[str, Entry]
    keys: dict[str, StatKey]
