"""Where a layer's lock files live and how the metadata file is read and written."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from venvlayers._fs import write_text_if_changed
from venvlayers.spec.model import LayerSpec, StackSpec


@dataclass(frozen=True)
class LockFiles:
    """The three committed files of one layer's lock."""

    folder: Path
    lock_path: Path
    meta_path: Path
    summary_path: Path


def lock_files(stack: StackSpec, layer: LayerSpec) -> LockFiles:
    build_name = layer.build_name
    folder = stack.requirements_dir / build_name
    # PEP 751 names are pylock.<name>.toml with no dot in <name>.
    stem = build_name.replace(".", "_")
    return LockFiles(
        folder=folder,
        lock_path=folder / f"pylock.{stem}.toml",
        meta_path=folder / f"pylock.{stem}.meta.json",
        summary_path=folder / f"packages-{build_name}.txt",
    )


@dataclass(frozen=True)
class LockMeta:
    """``pylock.<build name>.meta.json``: what the lock was made from, and its version."""

    requirements_hash: str
    lock_input_hash: str
    other_inputs_hash: str
    version_inputs_hash: str
    lock_version: int
    locked_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_meta(path: Path) -> LockMeta | None:
    """The metadata at ``path``, or None when it is missing or not as we write it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        meta = LockMeta(
            requirements_hash=str(data["requirements_hash"]),
            lock_input_hash=str(data["lock_input_hash"]),
            other_inputs_hash=str(data["other_inputs_hash"]),
            version_inputs_hash=str(data["version_inputs_hash"]),
            lock_version=int(data["lock_version"]),
            locked_at=str(data["locked_at"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return meta


def write_meta(path: Path, meta: LockMeta) -> bool:
    """Write ``meta`` unless the file already holds exactly it; True when written."""
    if read_meta(path) == meta:
        return False
    write_text_if_changed(path, json.dumps(meta.to_json(), indent=2, sort_keys=True) + "\n")
    return True
