"""What each deployed layer folder holds, as deploy made it, kept outside the layer.

``verify`` must never trust a manifest stored inside the layer it checks (whoever can edit
a file there can edit its manifest entry too), and must see what changes behaviour even
if no archive held it: the files postinstall.py and byte-compiling wrote, modes, empty
folders. So deploy describes every layer itself, in ``DIR/.venvlayers/layers/``:

- ``archive``: every entry as unpacked, with the sha256 the archive's manifest gives
  (the archive's sha256 checked first) or hashed at deploy (see LayerWriter);
- ``postinstall``: what postinstall.py added or changed (hashed), or removed (``null``);
- ``compiled``: what byte-compiling added, recorded once it finished.

Each record is named after a random token that is also written into the layer folder
(:data:`MARKER`), before the folder moves into place. The deployment record names each
layer's token, so a folder moved in by a deploy killed before writing the deployment record
carries another token and is never taken for the one recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvlayers._fs import atomic_write_bytes, sha256_file
from venvlayers.deploy.record import STATE_DIR

FILES_DIR = f"{STATE_DIR}/layers"
FILES_FORMAT = "venvlayers-layer-files"
FILES_VERSION = 1
# Inside each deployed layer folder: which deploy put the folder there.
MARKER = ".venvlayers-layer"
MARKER_FORMAT = "venvlayers-layer-marker"

# Byte-compiling: still to finish (the deploy was killed, or is running), done, or not asked.
COMPILE_PENDING = "pending"
COMPILE_DONE = "done"
COMPILE_OFF = "off"


@dataclass(frozen=True, slots=True)
class Entry:
    """One path in a layer: a file (mode, size, sha256), a folder (mode) or a symlink."""

    kind: str  # "f", "d" or "l"
    mode: int = 0
    size: int = 0
    sha256: str = ""
    link: str = ""

    def to_json(self) -> list[Any]:
        if self.kind == "f":
            return ["f", self.mode, self.size, self.sha256]
        if self.kind == "d":
            return ["d", self.mode]
        return ["l", self.link]

    @classmethod
    def from_json(cls, data: Any) -> Entry:
        kind = data[0]
        if kind == "f":
            return cls("f", int(data[1]), int(data[2]), str(data[3]))
        if kind == "d":
            return cls("d", int(data[1]))
        if kind == "l":
            return cls("l", link=str(data[1]))
        raise ValueError(f"unknown entry kind {kind!r}")


# What tells a path changed without reading it: inode, size, modification time, mode.
StatKey = tuple[int, int, int, int]


def stat_key(info: os.stat_result) -> StatKey:
    if stat.S_ISDIR(info.st_mode):
        # A folder's own times change with every name added inside it: only its mode counts.
        return (-1, 0, 0, info.st_mode)
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)


@dataclass(frozen=True, slots=True)
class Seen:
    """One path found on disk: its kind, mode, stat key and (symlinks) link text."""

    kind: str
    mode: int
    key: StatKey
    link: str = ""


def seen_of(info: os.stat_result, path: str) -> Seen:
    mode = info.st_mode
    key = stat_key(info)
    if stat.S_ISLNK(mode):
        return Seen("l", 0, key, os.readlink(path))
    if stat.S_ISDIR(mode):
        return Seen("d", stat.S_IMODE(mode), key)
    if stat.S_ISREG(mode):
        return Seen("f", stat.S_IMODE(mode), key)
    return Seen("?", stat.S_IMODE(mode), key)


def walk(layer_dir: Path) -> dict[str, Seen]:
    """Every path in ``layer_dir`` (``""`` is the folder itself), without following links.

    The layer path itself may be a symlink (the portable replacement, see places.py): it
    is followed, nothing below it is. The marker is left out.
    """
    root = os.fspath(layer_dir)
    found: dict[str, Seen] = {"": seen_of(os.stat(root), root)}
    pending = [("", root)]
    while pending:
        prefix, folder = pending.pop()
        with os.scandir(folder) as listing:
            for child in listing:
                relative = f"{prefix}{child.name}"
                if relative == MARKER:
                    continue
                seen = seen_of(child.stat(follow_symlinks=False), child.path)
                found[relative] = seen
                if seen.kind == "d":
                    pending.append((f"{relative}/", child.path))
    return found


def entry_of(layer_dir: Path, relative: str, seen: Seen) -> Entry:
    """The entry for a path found on disk; a file is read and hashed."""
    if seen.kind == "f":
        path = os.path.join(layer_dir, relative) if relative else os.fspath(layer_dir)
        return Entry("f", seen.mode, seen.key[1], sha256_file(path))
    if seen.kind == "l":
        return Entry("l", link=seen.link)
    return Entry(seen.kind, seen.mode)


def changes(
    layer_dir: Path, before: Mapping[str, StatKey], now: Mapping[str, Seen]
) -> dict[str, Entry | None]:
    """What changed in ``layer_dir`` since ``before`` (stat keys): new or changed paths
    hashed, removed ones ``None``."""
    changed: dict[str, Entry | None] = {
        relative: entry_of(layer_dir, relative, seen)
        for relative, seen in now.items()
        if before.get(relative) != seen.key
    }
    changed.update({relative: None for relative in before if relative not in now})
    return changed


@dataclass(frozen=True)
class LayerFiles:
    """The record of one deployed layer folder (see the module docstring)."""

    install_target: str
    token: str
    sha256: str
    archive: Mapping[str, Entry]
    postinstall: Mapping[str, Entry | None] = field(default_factory=dict)
    compiled: Mapping[str, Entry] = field(default_factory=dict)
    compile: str = COMPILE_OFF

    def expected(self) -> dict[str, Entry]:
        """Every path the folder holds once deploy is done with it."""
        paths = dict(self.archive)
        for relative, entry in self.postinstall.items():
            if entry is None:
                paths.pop(relative, None)
            else:
                paths[relative] = entry
        paths.update(self.compiled)
        return paths

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FILES_FORMAT,
            "version": FILES_VERSION,
            "install_target": self.install_target,
            "token": self.token,
            "sha256": self.sha256,
            "compile": self.compile,
            "archive": {k: e.to_json() for k, e in sorted(self.archive.items())},
            "postinstall": {
                k: None if e is None else e.to_json() for k, e in sorted(self.postinstall.items())
            },
            "compiled": {k: e.to_json() for k, e in sorted(self.compiled.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> LayerFiles:
        if data.get("format") != FILES_FORMAT or data.get("version") != FILES_VERSION:
            raise ValueError(f"unknown format {data.get('format')!r} {data.get('version')!r}")
        return cls(
            install_target=str(data["install_target"]),
            token=str(data["token"]),
            sha256=str(data["sha256"]),
            archive={k: Entry.from_json(v) for k, v in data["archive"].items()},
            postinstall={
                k: None if v is None else Entry.from_json(v) for k, v in data["postinstall"].items()
            },
            compiled={k: Entry.from_json(v) for k, v in data["compiled"].items()},
            compile=str(data["compile"]),
        )


def store_keys(files: LayerFiles) -> set[tuple[str, bool]]:
    """The content-store keys (sha256, executable) of the files the layer was unpacked with."""
    return {
        (entry.sha256, bool(entry.mode & 0o100))
        for entry in files.archive.values()
        if entry.kind == "f"
    }


def new_token() -> str:
    return secrets.token_hex(8)


def files_path(target: Path, install_target: str, token: str) -> Path:
    return target / FILES_DIR / f"{install_target}.{token}.json"


def save_files(target: Path, files: LayerFiles) -> None:
    path = files_path(target, files.install_target, files.token)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(files.to_json(), separators=(",", ":")).encode())


def load_files(target: Path, install_target: str, token: str) -> LayerFiles | None:
    """The file record of the layer deployed with ``token``; None if there is none."""
    try:
        data = json.loads(files_path(target, install_target, token).read_bytes())
    except FileNotFoundError:
        return None
    return LayerFiles.from_json(data)


def write_marker(layer_dir: Path, install_target: str, sha256: str, token: str) -> None:
    data = {"format": MARKER_FORMAT, "install_target": install_target, "sha256": sha256}
    data["token"] = token
    atomic_write_bytes(layer_dir / MARKER, json.dumps(data).encode(), mode=0o644)


def marker_token(layer_dir: Path) -> str | None:
    """The token of the deploy that placed ``layer_dir``; None when it has none."""
    try:
        data = json.loads((layer_dir / MARKER).read_bytes())
        token = data["token"] if data.get("format") == MARKER_FORMAT else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return token if isinstance(token, str) else None


def prune_files(target: Path, keep: Iterable[str]) -> None:
    """Delete the file records of tokens not in ``keep`` (folders gone or replaced)."""
    folder = target / FILES_DIR
    if not folder.is_dir():
        return
    wanted = set(keep)
    for path in folder.iterdir():
        token = path.name.removesuffix(".json").rpartition(".")[2]
        if token not in wanted:
            path.unlink(missing_ok=True)
