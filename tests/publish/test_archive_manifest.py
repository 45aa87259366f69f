"""The layer manifest inside every archive: what it lists, read back by deploy's reader."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.publish.test_archive_helpers import MTIME, ROOT, SITE, extract, make_layer
from venvlayers import layout
from venvlayers.contract.manifest import ManifestItem, build_manifest, read_manifest
from venvlayers.errors import MetadataError
from venvlayers.publish.archive import write_layer_archive


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return make_layer(tmp_path / "build" / "framework-demo", outside=tmp_path / "base")


@pytest.fixture
def deployed(tmp_path: Path, layer: Path) -> Path:
    archive = tmp_path / "layer.tar.zst"
    write_layer_archive(layer, archive, root_name=ROOT, mtime=MTIME)
    return extract(archive, tmp_path / "deploy")


def test_manifest_lists_files_and_links(layer: Path) -> None:
    manifest = build_manifest(layer)
    entries = {entry["path"]: entry for entry in manifest["entries"]}

    assert (manifest["format"], manifest["version"]) == ("venvlayers-manifest", 1)
    assert list(entries) == sorted(entries)
    script = b"#!/bin/sh\necho tool\n"
    assert entries["bin/tool"] == {
        "path": "bin/tool",
        "type": "file",
        "size": len(script),
        "sha256": hashlib.sha256(script).hexdigest(),
        "executable": True,
    }
    assert entries["lib64"] == {"path": "lib64", "type": "symlink", "link": "lib"}
    assert entries[f"{SITE}/pkg/hardlinked.py"]["type"] == "file"
    for left_out in ("pyvenv.cfg", "bin/python", "bin/python3.11", layout.LAYER_MANIFEST):
        assert left_out not in entries
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in entries)
    assert "include" not in entries  # folders are not listed


def test_the_stored_manifest_describes_the_unpacked_layer(deployed: Path) -> None:
    # Read by the one manifest reader deploy uses, the manifest inside the archive lists
    # every file and link of the unpacked layer with its size, hash and mode, and nothing
    # else (folders and the manifest itself are not listed).
    data = (deployed / layout.LAYER_MANIFEST).read_bytes()
    items = read_manifest(data, "manifest")
    found = {}
    for path in sorted(deployed.rglob("*")):
        relative = path.relative_to(deployed).as_posix()
        if relative == layout.LAYER_MANIFEST or (path.is_dir() and not path.is_symlink()):
            continue
        if path.is_symlink():
            found[relative] = ManifestItem(relative, False, link=os.readlink(path))
        else:
            content = path.read_bytes()
            found[relative] = ManifestItem(
                relative,
                True,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                executable=bool(path.stat().st_mode & 0o100),
            )
    assert items == found
    assert items["bin/tool"].executable


def test_unknown_manifest_version_is_refused(deployed: Path) -> None:
    manifest = json.loads((deployed / layout.LAYER_MANIFEST).read_text()) | {"version": 99}
    with pytest.raises(MetadataError, match="not a venvlayers-manifest version 1"):
        read_manifest(json.dumps(manifest).encode(), "manifest")
