"""The layer manifest inside every archive, and the drift check a deployment runs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.publish.test_archive_helpers import MTIME, ROOT, SITE, extract, make_layer
from venvlayers import layout
from venvlayers.contract.manifest import Drift, build_manifest, verify_against_manifest
from venvlayers.errors import PublishError
from venvlayers.publish.archive import write_layer_archive


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return make_layer(tmp_path / "build" / "framework-demo", outside=tmp_path / "base")


@pytest.fixture
def deployed(tmp_path: Path, layer: Path) -> Path:
    archive = tmp_path / "layer.tar.zst"
    write_layer_archive(layer, archive, root_name=ROOT, mtime=MTIME)
    return extract(archive, tmp_path / "deploy")


def stored_manifest(layer_dir: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((layer_dir / layout.LAYER_MANIFEST).read_text())
    return data


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


def test_deployed_layer_matches_its_manifest(deployed: Path) -> None:
    # What postinstall.py adds on the target is not drift: caches, pyvenv.cfg, base links.
    (deployed / "pyvenv.cfg").write_text("home = /somewhere\n")
    (deployed / "bin" / "python").symlink_to("/usr/bin/python3")
    cache = deployed / SITE / "pkg" / "__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-311.pyc").write_bytes(b"compiled")

    assert verify_against_manifest(deployed, stored_manifest(deployed)) == Drift()
    assert Drift().clean


def test_drift_reports_changed_missing_and_unexpected(deployed: Path) -> None:
    manifest = stored_manifest(deployed)
    pkg = deployed / SITE / "pkg"
    (pkg / "__init__.py").write_text("VALUE = 2\n")  # same size, other content
    (pkg / "shared.txt").write_text("longer than before\n")
    (deployed / "bin" / "tool").chmod(0o644)  # lost its exec bit
    (deployed / "lib64").unlink()
    (deployed / "lib64").symlink_to("lib/python3.11")
    (pkg / "data.bin").unlink()
    (deployed / "bin" / "python3").unlink()
    (pkg / "added.py").write_text("x = 1\n")
    (deployed / "share" / "extra-link").symlink_to("/etc")
    (deployed / "written-by-deploy.json").write_text("{}")

    drift = verify_against_manifest(
        deployed, manifest, ignore={"written-by-deploy.json", "bin/python3"}
    )

    assert drift == Drift(
        changed=("bin/tool", f"{SITE}/pkg/__init__.py", f"{SITE}/pkg/shared.txt", "lib64"),
        missing=(f"{SITE}/pkg/data.bin",),
        unexpected=(f"{SITE}/pkg/added.py", "share/extra-link"),
    )
    assert not drift.clean


def test_file_replaced_by_a_link_is_changed(deployed: Path) -> None:
    manifest = stored_manifest(deployed)
    target = deployed / layout.POSTINSTALL_SCRIPT
    target.unlink()
    os.symlink("bin/tool", target)
    assert verify_against_manifest(deployed, manifest).changed == (layout.POSTINSTALL_SCRIPT,)


def test_unknown_manifest_version_is_refused(deployed: Path) -> None:
    manifest = stored_manifest(deployed) | {"version": 99}
    with pytest.raises(PublishError, match="unsupported layer manifest"):
        verify_against_manifest(deployed, manifest)
