"""The descriptor inside a delta archive: what it applies to and which paths go away.

A delta archive holds, under ``<install_target>/``, only the files and symlinks whose
content the base layer lacks, the whole new layer's manifest (``layout.LAYER_MANIFEST``)
and this descriptor. The new layer is the base, less ``removed``, plus the delta's files;
every file of it is then checked against the new manifest, whose sha256 the stack
metadata holds (``DeltaFields.manifest_sha256``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from venvlayers.contract.fields import Fields
from venvlayers.contract.manifest import read_manifest
from venvlayers.errors import MetadataError

DELTA_DESCRIPTOR = "share/venv/metadata/venvlayers_delta.json"
DELTA_FORMAT = "venvlayers-delta"
DELTA_VERSION = 1


@dataclass(frozen=True)
class DeltaDescriptor:
    base_install_target: str
    base_archive_sha256: str
    removed: tuple[str, ...]

    def to_bytes(self) -> bytes:
        data = {
            "format": DELTA_FORMAT,
            "version": DELTA_VERSION,
            "base_install_target": self.base_install_target,
            "base_archive_hashes": {"sha256": self.base_archive_sha256},
            "removed": sorted(self.removed),
        }
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: Any, origin: str) -> DeltaDescriptor:
        fields = Fields(data, origin)
        if fields.data.get("format") != DELTA_FORMAT or fields.data.get("version") != DELTA_VERSION:
            raise MetadataError(
                f"{origin}: not a {DELTA_FORMAT} version {DELTA_VERSION} descriptor"
            )
        removed = fields.data.get("removed", [])
        if not isinstance(removed, list) or not all(isinstance(p, str) and p for p in removed):
            fields.fail("removed", "must be a list of layer-relative paths")
        return cls(
            base_install_target=fields.name("base_install_target"),
            base_archive_sha256=fields.object("base_archive_hashes").sha256("sha256"),
            removed=tuple(removed),
        )


@dataclass(frozen=True)
class DeltaContent:
    """What a delta from ``old`` to ``new`` (two manifests' entries) must carry."""

    added: frozenset[str]  # paths of files and symlinks the delta holds
    removed: tuple[str, ...]


def delta_content(old_manifest: bytes, new_manifest: bytes) -> DeltaContent:
    """What a delta between two layer manifests (their bytes) must carry: files whose
    content the old layer lacks anywhere (a file that only moved is taken from the base by
    its hash), symlinks that are new or changed, and the paths removed."""
    old = read_manifest(old_manifest, "the earlier layer manifest")
    new = read_manifest(new_manifest, "the layer manifest")
    old_contents = {item.sha256 for item in old.values() if item.is_file}
    old_links = {(path, item.link) for path, item in old.items() if not item.is_file}
    added = {
        path
        for path, item in new.items()
        if (item.sha256 not in old_contents if item.is_file else (path, item.link) not in old_links)
    }
    removed = tuple(sorted(path for path in old if path not in new))
    return DeltaContent(frozenset(added), removed)
