"""Moving layer folders in and out of place so that a kill at any moment is recoverable.

Names used inside the deployment folder, all hidden:

- ``.<install_target>.partial-XXXX``: a layer being unpacked (or, after a swap, the old
  content being deleted): always safe to delete.
- ``.<install_target>.old-XXXX``: the previous content, moved away while the new one moves in
  on systems without an atomic exchange. If the layer folder is missing, it is moved back.
- ``.<install_target>.trash-XXXX``: a removed layer being deleted: always safe to delete.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from venvlayers.deploy import _faults

_LEFTOVER = re.compile(r"\.(?P<target>.+)\.(?P<kind>partial|old|trash)-[A-Za-z0-9_]+")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def new_partial(target: Path, install_target: str) -> Path:
    partial = Path(tempfile.mkdtemp(prefix=f".{install_target}.partial-", dir=target))
    # mkdtemp makes it private (0o700); as a layer folder it must be readable by every user.
    partial.chmod(0o755)
    return partial


def _hidden(final: Path, kind: str) -> Path:
    return final.with_name(f".{final.name}.{kind}-{secrets.token_hex(4)}")


def _exchange(first: Path, second: Path) -> bool:
    """Swap two folders in one atomic step (Linux ``renameat2``); False where unsupported."""
    if sys.platform != "linux" or _faults.requested("swap"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # glibc older than 2.28
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    status = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), os.fspath(first))


def move_into_place(new: Path, final: Path) -> None:
    """Make ``new`` the folder ``final``; an existing ``final`` is replaced, then deleted.

    Users of the old folder see either the old or the new content: an atomic exchange where
    the system has one; elsewhere two renames, with :func:`recover_leftovers` moving the
    old folder back if a kill lands between them.
    """
    if not final.exists():
        os.replace(new, final)
        return
    if _exchange(new, final):
        shutil.rmtree(new)  # ``new`` now holds the old content under a partial name
        return
    old = _hidden(final, "old")
    os.replace(final, old)
    _faults.die_if_requested("swap", final.name)
    os.replace(new, final)
    shutil.rmtree(old)


def discard(folder: Path) -> None:
    """Delete a layer folder: it disappears in one rename, the deletion comes after."""
    if not folder.exists():
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
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        final = target / match["target"]
        if match["kind"] == "old" and not final.exists():
            os.replace(entry, final)
            report(f"{final.name}: restored after an interrupted deploy")
        else:
            shutil.rmtree(entry)
            report(f"{entry.name}: removed, left over from an interrupted deploy")
