"""One deployed layer folder as a reproducible OCI image layer (gzip-compressed tar).

Entries are written depth first with names sorted by code point, owned by 0:0 with no
user names, every mtime the layer's lock time, modes normalised as in layer archives
(0o755 / 0o644, links 0o777), hard links as independent files, pax format; gzip records
no name and no time. The same folder content gives the same bytes, so two images that
hold the same framework layer share its digest.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_GZIP_LEVEL = 6


@dataclass(frozen=True)
class PackedLayer:
    path: Path
    digest: str  # sha256 of the compressed blob
    size: int
    diff_id: str  # sha256 of the uncompressed tar


class _Hashing:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, sink: IO[bytes] | None) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()


# Names a deploy keeps at a layer's root for itself (".venvlayers-layer", ...).
_DEPLOY_STATE = ".venvlayers"


def pack_layer(folder: Path, prefix: str, dest: Path, *, mtime: int) -> PackedLayer:
    """Write ``folder`` as tar entries under ``prefix`` (``opt/venvlayers/<target>``)."""
    with dest.open("wb") as out:
        compressed = _Hashing(out)
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=compressed, compresslevel=_GZIP_LEVEL, mtime=0
        ) as gz:
            plain = _Hashing(gz)  # type: ignore[arg-type]
            with tarfile.open(
                fileobj=plain,
                mode="w|",
                format=tarfile.PAX_FORMAT,
            ) as tar:  # type: ignore[call-overload]
                parts = prefix.strip("/").split("/")
                for depth in range(1, len(parts)):
                    tar.addfile(_info("/".join(parts[:depth]), tarfile.DIRTYPE, 0o755, mtime))
                tar.addfile(_info(prefix.strip("/"), tarfile.DIRTYPE, 0o755, mtime))
                _add_tree(tar, folder, prefix.strip("/"), mtime, top=True)
        out.flush()
        os.fsync(out.fileno())
    return PackedLayer(
        path=dest,
        digest="sha256:" + compressed.hash.hexdigest(),
        size=compressed.size,
        diff_id="sha256:" + plain.hash.hexdigest(),
    )


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_tree(
    tar: tarfile.TarFile, folder: Path, name: str, mtime: int, *, top: bool = False
) -> None:
    entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    for entry in entries:
        if top and entry.name.startswith(_DEPLOY_STATE):
            # The deploy's own marker (a random token naming this deployment): not layer
            # content, and it would give every image its own copy of a shared layer.
            continue
        member = f"{name}/{entry.name}"
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            info = _info(member, tarfile.SYMTYPE, 0o777, mtime)
            info.linkname = os.readlink(entry.path)
            tar.addfile(info)
        elif stat.S_ISDIR(st.st_mode):
            tar.addfile(_info(member, tarfile.DIRTYPE, 0o755, mtime))
            _add_tree(tar, Path(entry.path), member, mtime)
        elif stat.S_ISREG(st.st_mode):
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            info = _info(member, tarfile.REGTYPE, mode, mtime)
            info.size = st.st_size
            with open(entry.path, "rb") as stream:
                tar.addfile(info, stream)
        # Sockets and pipes never come out of a deploy; anything else is not layer content.
