"""Move layer folders in and out of place so that a kill at any moment leaves a layer at
every layer path that had one.

A layer path is normally the layer's own folder. Replacing it keeps the old or the new
folder at that path at every instant:

- where the system can swap two names in one step (Linux ``renameat2(RENAME_EXCHANGE)``,
  macOS ``renamex_np(RENAME_SWAP)``), the new folder and the old one are swapped;
- elsewhere, a first deploy makes the layer path a symlink to a hidden versioned folder,
  ``.<install_target>.v-XXXX``; a replacement unpacks into a new versioned folder and
  renames a new symlink over the old one, which is atomic everywhere. ``run``, ``verify``,
  ``remove`` and ``gc`` follow that one link. The cost: one more name per layer, and
  paths through the link (``DIR/app/bin/python``) are not the folder's real path.

A folder placed without a symlink on a system that had the exchange, then replaced on one
that lacks it (a copied target on another file system), falls back to two renames; if a
kill lands between them, the next deploy, remove or gc moves the old folder back.

Names used inside the deployment folder, all hidden:

- ``.<install_target>.partial-XXXX``: a layer being unpacked (or, after a swap, the old
  content being deleted): always safe to delete;
- ``.<install_target>.v-XXXX``: a layer's versioned folder, in use while the layer path
  links to it, safe to delete otherwise;
- ``.<install_target>.link-XXXX``: a symlink about to replace the layer path;
- ``.<install_target>.old-XXXX``: the previous content, moved away on the two-rename path;
  if the layer path is missing, it is moved back;
- ``.<install_target>.trash-XXXX``: a removed layer being deleted: always safe to delete.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from venvlayers.deploy.steps import StepHook, no_hook

_LEFTOVER = re.compile(r"\.(?P<target>.+)\.(?P<kind>partial|old|trash|v|link)-[A-Za-z0-9_]+")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # Linux renameat2
_RENAME_SWAP = 2  # macOS renamex_np
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM, errno.ENOTSUP)


def new_partial(target: Path, install_target: str) -> Path:
    partial = Path(tempfile.mkdtemp(prefix=f".{install_target}.partial-", dir=target))
    # mkdtemp makes it private (0o700); as a layer folder it must be readable by every user.
    partial.chmod(0o755)
    return partial


def _hidden(final: Path, kind: str) -> Path:
    return final.with_name(f".{final.name}.{kind}-{secrets.token_hex(4)}")


def exchange(first: Path, second: Path) -> bool:
    """Swap two names in one atomic step; False where the system or file system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    if sys.platform == "linux":
        call = getattr(libc, "renameat2", None)
        if call is None:  # glibc older than 2.28
            return False
        call.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint,
        ]
        status = call(
            _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
        )
    elif sys.platform == "darwin":
        call = getattr(libc, "renamex_np", None)
        if call is None:
            return False
        call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        status = call(os.fsencode(first), os.fsencode(second), _RENAME_SWAP)
    else:
        return False
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), os.fspath(first))


class Placer:
    """Places the layers of one deploy into ``target``; see the module docstring.

    What a layer replaces is kept, under a hidden name, until :meth:`commit` deletes it or
    :meth:`roll_back` puts it back (a deploy refused after some layers were placed leaves
    every layer path as it was).
    """

    def __init__(self, target: Path, hook: StepHook = no_hook) -> None:
        self.target = target
        self._hook = hook
        self._can_exchange: bool | None = None
        self._placed: list[_Placed] = []

    def can_exchange(self) -> bool:
        """Whether ``target``'s file system swaps names (tried once, on two empty folders)."""
        if self._can_exchange is None:
            first = Path(tempfile.mkdtemp(prefix=".exchange.partial-", dir=self.target))
            second = Path(tempfile.mkdtemp(prefix=".exchange.partial-", dir=self.target))
            try:
                self._can_exchange = exchange(first, second)
            finally:
                first.rmdir()
                second.rmdir()
        return self._can_exchange

    def move_into_place(self, new: Path, final: Path) -> None:
        """Make ``new`` the layer at ``final``; a layer already there is replaced, and kept
        until :meth:`commit`. ``final`` never lacks a layer, whatever instant a kill lands."""
        if final.is_symlink() or (not final.exists() and not self.can_exchange()):
            was = os.readlink(final) if final.is_symlink() else None
            previous = self._relink(new, final)
            self._placed.append(_Placed(final, "link", previous, was))
            return
        if not final.exists():
            os.replace(new, final)
            self._placed.append(_Placed(final, "new"))
            return
        if self.can_exchange() and exchange(new, final):
            # ``new`` now holds the old content, under a partial name.
            self._placed.append(_Placed(final, "exchange", new))
            return
        old = _hidden(final, "old")
        os.replace(final, old)
        self._hook("swap", final.name)
        os.replace(new, final)
        self._placed.append(_Placed(final, "renames", old))

    def commit(self) -> None:
        """Delete what the placed layers replaced."""
        placed, self._placed = self._placed, []
        for done in placed:
            if done.previous is not None:
                shutil.rmtree(done.previous, ignore_errors=True)

    def roll_back(self) -> None:
        """Put back what every layer placed replaced, and take out the layers new here."""
        placed, self._placed = self._placed, []
        for done in reversed(placed):
            final, previous = done.final, done.previous
            if done.how == "link":
                if done.link_text is None:
                    discard(final)
                    continue
                # The path was a link (to its versioned folder, or anywhere): the same link
                # again, then the folder placed goes.
                current = _versioned_folder(final)
                link = _hidden(final, "link")
                os.symlink(done.link_text, link)
                os.replace(link, final)
                if current is not None:
                    shutil.rmtree(current)
            elif previous is None:
                discard(final)
            elif done.how == "exchange" and exchange(previous, final):
                shutil.rmtree(previous)
            else:
                trash = _hidden(final, "trash")
                os.replace(final, trash)
                # A kill here leaves the layer path missing; the next run moves "old" back.
                os.replace(previous, final)
                shutil.rmtree(trash)

    def _relink(self, new: Path, final: Path) -> Path | None:
        previous = _versioned_folder(final)
        versioned = _hidden(final, "v")
        os.replace(new, versioned)
        link = _hidden(final, "link")
        os.symlink(versioned.name, link)
        self._hook("swap", final.name)
        os.replace(link, final)
        return previous


@dataclass(frozen=True)
class _Placed:
    """A layer path a :class:`Placer` placed: how, the hidden folder holding what the path
    held before (None: nothing, or not a folder of ours), and the link text the path had if
    it was a link."""

    final: Path
    how: str  # "new", "exchange", "renames" or "link"
    previous: Path | None = None
    link_text: str | None = None


def _versioned_folder(final: Path) -> Path | None:
    """The hidden folder the layer path ``final`` links to; None if it is no such link."""
    if not final.is_symlink():
        return None
    text = os.readlink(final)
    match = _LEFTOVER.fullmatch(text)
    if "/" in text or match is None or match["kind"] != "v" or match["target"] != final.name:
        return None
    return final.with_name(text)


def is_layer_path(entry: Path) -> bool:
    """A visible name that is a layer folder, or a link to its hidden versioned folder."""
    if entry.name.startswith("."):
        return False
    if entry.is_symlink():
        return _versioned_folder(entry) is not None
    return entry.is_dir()


def discard(folder: Path) -> None:
    """Delete a layer: its path disappears in one step, the deletion comes after."""
    versioned = _versioned_folder(folder)
    if versioned is not None:
        folder.unlink()
        folder = versioned
    if not folder.exists() or folder.is_symlink():
        return
    trash = _hidden(folder, "trash")
    os.replace(folder, trash)
    shutil.rmtree(trash)


def recover_leftovers(target: Path, report: Callable[[str], None]) -> None:
    """Finish what an interrupted deploy or removal left behind; run under the deploy lock."""
    if not target.is_dir():
        return
    for entry in sorted(target.iterdir()):
        match = _LEFTOVER.fullmatch(entry.name)
        if match is None:
            continue
        final = target / match["target"]
        kind = match["kind"]
        if kind == "link":
            if entry.is_symlink():
                entry.unlink()
            continue
        if not entry.is_dir() or entry.is_symlink():
            continue
        if kind == "v" and _versioned_folder(final) == entry:
            continue
        if kind == "old" and not final.exists() and not final.is_symlink():
            os.replace(entry, final)
            report(f"{final.name}: restored after an interrupted deploy")
        else:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(entry)
            report(f"{entry.name}: removed, left over from an interrupted deploy")
