"""The per-layer file manifest (``layout.LAYER_MANIFEST``): written by publish, read by deploy.

The archive writers build the manifest while they stream each file (one read per file) and
add it to the archive as an in-memory member, so the layer folder on disk is never changed
by publishing. :func:`build_manifest` computes the same document from a folder;
:func:`read_manifest` is its one reader (deploy's deltas and content store use it, and
treat it as untrusted). Deployed layers are checked against deploy's own file record, not
against a manifest (see deploy/drift.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers._fs import sha256_file
from venvlayers.contract.fields import Fields, parse_json
from venvlayers.contract.layer_files import EntryKind, LayerEntry, scan_layer
from venvlayers.errors import MetadataError

MANIFEST_FORMAT = "venvlayers-manifest"
MANIFEST_VERSION = 1
# The largest manifest a deploy reads into memory; a larger one is not used (its layer's
# files are hashed, or come from the archive). The torch layer's, 16,000 files, is 4.9 MB.
MAX_MANIFEST_BYTES = 64 << 20


def file_record(entry: LayerEntry, sha256: str) -> dict[str, Any]:
    return {
        "path": entry.path,
        "type": "file",
        "size": entry.size,
        "sha256": sha256,
        "executable": entry.executable,
    }


def symlink_record(entry: LayerEntry) -> dict[str, Any]:
    return {"path": entry.path, "type": "symlink", "link": entry.link}


def manifest_document(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "entries": sorted(records, key=lambda record: str(record["path"])),
    }


def manifest_bytes(document: Mapping[str, Any]) -> bytes:
    """The stable serialisation stored in archives: the same document gives the same bytes."""
    return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def build_manifest(layer_dir: Path) -> dict[str, Any]:
    """The manifest an archive of ``layer_dir`` carries (publishing rules, files hashed)."""
    return manifest_document(_records(scan_layer(layer_dir, strict=True)))


def _records(entries: Iterable[LayerEntry]) -> Iterator[dict[str, Any]]:
    for entry in entries:
        if entry.kind is EntryKind.FILE:
            yield file_record(entry, sha256_file(entry.source))
        elif entry.kind is EntryKind.SYMLINK:
            yield symlink_record(entry)


@dataclass(frozen=True)
class ManifestItem:
    """One entry of a layer manifest, as a deploy reads it: a file or a symlink."""

    path: str
    is_file: bool
    size: int = 0
    sha256: str = ""
    executable: bool = False
    link: str = ""


def read_manifest(data: bytes, origin: str) -> dict[str, ManifestItem]:
    """The entries of the manifest ``data`` by layer-relative path; a :class:`MetadataError`
    naming the field when it is malformed (deploy reads manifests as untrusted)."""
    fields = Fields(parse_json(data, origin=origin), origin)
    if (
        fields.data.get("format") != MANIFEST_FORMAT
        or fields.data.get("version") != MANIFEST_VERSION
    ):
        raise MetadataError(f"{origin}: not a {MANIFEST_FORMAT} version {MANIFEST_VERSION}")
    items: dict[str, ManifestItem] = {}
    for entry in fields.objects("entries"):
        path = entry.text("path")
        if path in items:
            entry.fail("path", f"{path!r} appears twice")
        kind = entry.text("type")
        if kind == "file":
            items[path] = ManifestItem(
                path,
                True,
                size=entry.integer("size"),
                sha256=entry.sha256("sha256"),
                executable=entry.boolean("executable", default=False),
            )
        elif kind == "symlink":
            items[path] = ManifestItem(path, False, link=entry.text("link"))
        else:
            entry.fail("type", f"must be 'file' or 'symlink', not {kind!r}")
    return items
