"""The content store of a deployment folder: every layer file kept once, by content.

``DIR/.venvlayers/store/<2 hex>/<sha256>`` holds a file whose content hashes to its name,
``<sha256>.x`` the same content executable. Layer folders are made of links to the
entries, so two layers (two versions of a framework side by side) pay once for the files
they share, and a deploy writes only what the store lacks.

How a layer file is made from an entry (the link mode, chosen once per deploy):

- ``hardlink``: the same inode; costs no data and no inode, but a write *into* a layer file
  changes it for every layer using that content (entries are read-only to discourage it,
  and ``verify`` finds it);
- ``reflink``: a copy-on-write clone (btrfs, XFS, APFS-like file systems): one inode per
  file, the data shared until either copy changes;
- ``copy``: a plain copy, where neither works (the store on another file system).

``auto`` takes the first that works between the store and DIR, in that order.

Kill safety: an entry appears under its name in one step (a link or a rename of a
complete file), so a name in the store always holds complete content; what a killed
deploy left under ``tmp/`` is removed by the next one. Entries are not fsynced: a power
loss may leave an entry that no longer matches its name, which deploy checks (it hashes
every entry before linking it) and ``verify`` reports.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from venvlayers._fs import sha256_file
from venvlayers.deploy.record import STATE_DIR
from venvlayers.errors import DeployError

STORE_DIR = f"{STATE_DIR}/store"
LINK_MODES = ("auto", "hardlink", "reflink", "copy")
# Entries are read-only: a layer file is a name of the entry (hardlink mode), and an
# editor or tool that writes in place should fail rather than change every layer.
ENTRY_MODE = 0o444
EXECUTABLE_ENTRY_MODE = 0o555
_EXECUTABLE_SUFFIX = ".x"
_TMP = "tmp"
_CHUNK = 1 << 20
# Linux ioctl FICLONE: clone all of one file's extents into another.
_FICLONE = 0x40049409

StoreKey = tuple[str, bool]  # (sha256 hex, executable)


def entry_mode(executable: bool) -> int:
    return EXECUTABLE_ENTRY_MODE if executable else ENTRY_MODE


def key_of_name(name: str) -> StoreKey | None:
    """The key an entry's file name stands for; None for anything else."""
    executable = name.endswith(_EXECUTABLE_SUFFIX)
    digest = name.removesuffix(_EXECUTABLE_SUFFIX)
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        return None
    return digest, executable


class Store:
    """The store of ``target``; ``link_mode`` one of :data:`LINK_MODES`."""

    def __init__(self, target: Path, link_mode: str = "auto") -> None:
        if link_mode not in LINK_MODES:
            raise DeployError(f"unknown link mode {link_mode!r} (one of {', '.join(LINK_MODES)})")
        self.target = target
        self.root = target / STORE_DIR
        # Joined with for every file a deploy stores: a str, not a Path made one each time.
        self._root = os.fspath(self.root)
        self._asked = link_mode
        self._mode: str | None = None
        # Entries hashed by this deploy and found to match their name (or just written).
        self._good: set[StoreKey] = set()
        # Entries this deploy put in the store (taken out again if it is refused).
        self._added: set[StoreKey] = set()
        self._existed = self.root.is_dir()
        # Whether it held any entry when the deploy began (a fresh target's holds none).
        self.had_entries = self._existed and any(len(name) == 2 for name in os.listdir(self.root))
        self._lock = threading.Lock()
        self._folders: set[str] = set()

    # --- names -------------------------------------------------------------------------------

    def path(self, key: StoreKey) -> str:
        digest, executable = key
        name = digest + (_EXECUTABLE_SUFFIX if executable else "")
        return os.path.join(self._root, digest[:2], name)

    def _folder_of(self, key: StoreKey) -> None:
        folder = os.path.join(self._root, key[0][:2])
        if folder not in self._folders:
            os.makedirs(folder, mode=0o755, exist_ok=True)
            self._folders.add(folder)

    def _tmp_name(self) -> str:
        folder = os.path.join(self.root, _TMP)
        if folder not in self._folders:
            os.makedirs(folder, mode=0o755, exist_ok=True)
            self._folders.add(folder)
        return os.path.join(folder, secrets.token_hex(8))

    # --- the link mode -------------------------------------------------------------------------

    @property
    def link_mode(self) -> str:
        """The mode in use: probed on the first call when ``auto`` was asked."""
        if self._mode is None:
            self._mode = self._probe()
        return self._mode

    def _probe(self) -> str:
        """The first of hardlink, reflink, copy that works from the store into DIR (or the
        mode asked for, if it works)."""
        source = self._tmp_name()
        with open(source, "wb") as stream:
            stream.write(b"probe")
        dest = os.path.join(self.target, f".store-probe.partial-{secrets.token_hex(4)}")
        tried = ("hardlink", "reflink") if self._asked == "auto" else (self._asked,)
        try:
            for mode in tried:
                try:
                    _place(mode, source, dest)
                except OSError as exc:
                    if self._asked == "auto":
                        continue
                    finally_unlink(source)
                    for folder in (os.path.dirname(source), self.root):
                        with contextlib.suppress(OSError):
                            os.rmdir(folder)
                    raise DeployError(
                        f"{self.target}: --link-mode {mode} does not work here"
                        f" ({exc.strerror}); use auto or another mode"
                    ) from None
                finally_unlink(dest)
                return mode
            return "copy"
        finally:
            finally_unlink(source)

    def describe(self) -> str:
        asked = "" if self._asked != "auto" else " (chosen automatically)"
        return f"files come from the content store in {self.root} by {self.link_mode}{asked}"

    # --- entries -------------------------------------------------------------------------------

    def has_good(self, key: StoreKey) -> bool:
        """Whether the entry exists and its content matches its name (hashed once per run)."""
        if key in self._good:
            return True
        try:
            matches = sha256_file(self.path(key)) == key[0]
            mode = os.lstat(self.path(key)).st_mode
        except OSError:
            return False
        if not matches or not stat.S_ISREG(mode) or bool(mode & 0o100) != key[1]:
            return False
        self._good.add(key)
        return True

    def check_many(self, keys: set[StoreKey]) -> set[StoreKey]:
        """The ``keys`` whose entries are good, hashed side by side (hashing frees the GIL)."""
        todo = [key for key in keys if key not in self._good]
        present = [key for key in todo if os.path.isfile(self.path(key))]
        if present:
            with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
                list(pool.map(self.has_good, present))
        return {key for key in keys if key in self._good}

    def put(self, written: str, key: StoreKey, *, checked: bool = True) -> None:
        """Make the complete file ``written`` (already given its entry mode) the entry of
        ``key``; an entry already there is replaced by it, unless it is sound. ``checked``:
        ``written`` was hashed to ``key`` here; otherwise ``key`` is what a manifest claims,
        and the entry is hashed before it is used like any entry of an earlier deploy."""
        self._folder_of(key)
        final = self.path(key)
        if self.link_mode == "hardlink":
            try:
                os.link(written, final)
                if checked:
                    self._good.add(key)
                self._note_added(key)
                return
            except FileExistsError:
                # Another layer of this deploy, or an earlier deploy, stored it: the file
                # just written gives way to a link to the entry, if the entry is sound.
                if self.has_good(key):
                    self._relink(written, key)
                    return
            except OSError as exc:
                if exc.errno != errno.EMLINK:
                    raise
                # Too many links to one inode (ext4: 65000): the entry gets its own copy.
        elif os.path.exists(final) and self.has_good(key):
            return  # a copy or clone is the layer's own file already
        tmp = self._tmp_name()
        try:
            if self.link_mode == "hardlink":
                try:
                    os.link(written, tmp)
                except OSError as exc:
                    if exc.errno != errno.EMLINK:
                        raise
                    _place("copy", written, tmp)
            else:
                _place(self.link_mode, written, tmp)
            os.replace(tmp, final)
        except BaseException:
            finally_unlink(tmp)
            raise
        if checked:
            self._good.add(key)
        self._note_added(key)

    def _note_added(self, key: StoreKey) -> None:
        with self._lock:  # layers are unpacked side by side
            self._added.add(key)

    def take_back(self) -> None:
        """Remove the entries this deploy added (it was refused: no layer in use has them)."""
        with self._lock:
            added, self._added = self._added, set()
        for key in added:
            finally_unlink(self.path(key))
            self._good.discard(key)
        folders = [*{os.path.dirname(self.path(key)) for key in added}]
        if not self._existed:
            folders += [os.path.join(self.root, _TMP), os.fspath(self.root)]
        for folder in folders:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if empty
        self._folders.clear()

    def _relink(self, written: str, key: StoreKey) -> None:
        folder, name = os.path.split(written)
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}")
        try:
            self.place(key, tmp)
            os.replace(tmp, written)
        except BaseException:
            finally_unlink(tmp)
            raise

    def place(self, key: StoreKey, dest: str) -> None:
        """Create ``dest`` (which must not exist) from the entry of ``key``."""
        try:
            _place(self.link_mode, self.path(key), dest)
        except OSError as exc:
            if exc.errno != errno.EMLINK:
                raise
            _place("copy", self.path(key), dest)

    def recover(self) -> None:
        """Remove what a killed deploy left half written; run under the deploy lock."""
        shutil.rmtree(os.path.join(self.root, _TMP), ignore_errors=True)

    def entries(self) -> Iterator[tuple[StoreKey, str]]:
        """Every entry in the store, with its path."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                key = key_of_name(entry.name)
                if key is not None:
                    yield key, os.fspath(entry)

    def prune(self, keep: set[StoreKey]) -> tuple[int, int]:
        """Delete every entry not in ``keep``; returns (entries, bytes) removed."""
        removed = freed = 0
        for key, path in list(self.entries()):
            if key in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                info = os.lstat(path)
                os.unlink(path)
                removed += 1
                # A name that is the inode's last one frees its blocks.
                freed += info.st_size if info.st_nlink == 1 else 0
        self.recover()
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if len(folder.name) == 2 and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        self._folders.clear()
        return removed, freed


def finally_unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _place(mode: str, source: str, dest: str) -> None:
    if mode == "hardlink":
        os.link(source, dest)
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(source, "rb") as src:
        info = os.fstat(src.fileno())
        fd = os.open(dest, flags, 0o600)
        try:
            if mode == "reflink":
                _reflink(src.fileno(), fd)
            else:
                with open(fd, "wb", closefd=False) as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
            # The same mtime as the entry: byte-compiling keys bytecode on it.
            os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
        except BaseException:
            os.close(fd)
            finally_unlink(dest)
            raise
        os.close(fd)


def _reflink(source: int, dest: int) -> None:
    if sys.platform != "linux":
        raise OSError(errno.EOPNOTSUPP, "reflinks are tried on Linux only")
    import fcntl

    fcntl.ioctl(dest, _FICLONE, source)
