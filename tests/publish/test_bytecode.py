"""publish --bytecode: the layer's bytecode made at publish, reproducibly, as archive members."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tarfile
from pathlib import Path

import zstandard

from venvlayers import layout
from venvlayers.contract.layer_files import EntryKind, LayerEntry, scan_layer
from venvlayers.contract.layer_metadata import LayerMetadata
from venvlayers.publish.archive import ArchiveRequest, write_layer_archives
from venvlayers.publish.bytecode import compile_layer, sources_to_compile, with_bytecode

SITE = "lib/python3.x/site-packages"
TAG = sys.implementation.cache_tag


def _runtime_layer(root: Path) -> Path:
    """A runtime-shaped layer whose interpreter is the Python running the tests."""
    layer = root / "cpython-test"
    (layer / "bin").mkdir(parents=True)
    os.symlink(sys.executable, layer / "bin/python")
    meta = LayerMetadata.for_runtime(python="bin/python", py_version="3.11.7", site_dir=SITE)
    (layer / layout.LAYER_METADATA).parent.mkdir(parents=True)
    (layer / layout.LAYER_METADATA).write_text(json.dumps(meta.to_json()))
    files = {
        f"{SITE}/pkg/__init__.py": "VALUE = {'b', 'a', 'c'}\n",
        f"{SITE}/pkg/mod.py": "def f():\n    return frozenset({1, 2, 3})\n",
        f"{SITE}/pkg/tests/test_x.py": "assert True\n",
        f"{SITE}/pkg/broken.py": "def (:\n",
        "lib/python3.x/os_like.py": "X = 1\n",
        "bin/tool.py": "print('not in the library')\n",
    }
    for relative, text in files.items():
        (layer / relative).parent.mkdir(parents=True, exist_ok=True)
        (layer / relative).write_text(text)
    return layer


def _archive_members(path: Path) -> dict[str, bytes]:
    with (
        path.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        members = {}
        for info in tar:
            data = tar.extractfile(info) if info.isfile() else None
            members[info.name] = data.read() if data is not None else b""
        return members


def test_sources_are_the_library_without_test_suites(tmp_path: Path) -> None:
    layer = _runtime_layer(tmp_path)
    chosen = sources_to_compile(scan_layer(layer), "lib/python3.x")
    assert sorted(chosen) == [
        "lib/python3.x/os_like.py",
        f"{SITE}/pkg/__init__.py",
        f"{SITE}/pkg/broken.py",
        f"{SITE}/pkg/mod.py",
    ]


def test_bytecode_is_unchecked_hash_and_named_by_layer_paths(tmp_path: Path) -> None:
    layer = _runtime_layer(tmp_path)
    made = compile_layer(layer, tmp_path, scan_layer(layer), tmp_path / "out")
    files = {entry.path: entry for entry in made if entry.kind is EntryKind.FILE}
    expected = f"{SITE}/pkg/__pycache__/mod.{TAG}.pyc"
    # The broken source gets none, as compileall on a target would give it none.
    assert set(files) == {
        expected,
        f"{SITE}/pkg/__pycache__/__init__.{TAG}.pyc",
        f"lib/python3.x/__pycache__/os_like.{TAG}.pyc",
    }
    assert {e.path for e in made if e.kind is EntryKind.DIRECTORY} == {
        f"{SITE}/pkg/__pycache__",
        "lib/python3.x/__pycache__",
    }
    data = files[expected].source.read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    # PEP 552 flags: hash-based (bit 0), source not checked (bit 1 clear).
    assert int.from_bytes(data[4:8], "little") == 0b01
    assert b"pkg/mod.py" in data and os.fspath(tmp_path).encode() not in data


def test_members_keep_the_archive_order() -> None:
    def entry(path: str, kind: EntryKind = EntryKind.FILE) -> LayerEntry:
        return LayerEntry(path, kind, Path(path))

    entries = [
        entry("a", EntryKind.DIRECTORY),
        entry("a/b.py"),
        entry("a/z", EntryKind.DIRECTORY),
        entry("a/z/y.py"),
        entry("a_b.py"),
    ]
    bytecode = [
        entry("a/__pycache__", EntryKind.DIRECTORY),
        entry("a/__pycache__/b.pyc"),
        entry("a/z/__pycache__", EntryKind.DIRECTORY),
        entry("a/z/__pycache__/y.pyc"),
    ]
    assert [e.path for e in with_bytecode(entries, bytecode)] == [
        "a",
        "a/__pycache__",
        "a/__pycache__/b.pyc",
        "a/b.py",
        "a/z",
        "a/z/__pycache__",
        "a/z/__pycache__/y.pyc",
        "a/z/y.py",
        "a_b.py",
    ]


def test_archive_with_bytecode_is_reproducible(tmp_path: Path) -> None:
    layer = _runtime_layer(tmp_path / "build")
    digests = []
    for attempt in ("one", "two"):
        made = compile_layer(
            layer, tmp_path / "build", scan_layer(layer), tmp_path / attempt / "scratch"
        )
        request = ArchiveRequest(
            layer_dir=layer,
            dest=tmp_path / attempt / "cpython-test.tar.zst",
            root_name="cpython-test",
            mtime=1_700_000_000,
            bytecode=tuple(made),
        )
        (result,) = write_layer_archives([request])
        digests.append(result.sha256)
        members = _archive_members(result.path)
        pyc = f"cpython-test/{SITE}/pkg/__pycache__/mod.{TAG}.pyc"
        assert pyc in members
        manifest = json.loads(members[f"cpython-test/{layout.LAYER_MANIFEST}"])
        listed = {e["path"]: e for e in manifest["entries"]}
        assert listed[pyc.removeprefix("cpython-test/")]["sha256"] == (
            hashlib.sha256(members[pyc]).hexdigest()
        )
    assert digests[0] == digests[1]
    # The build folder is never written to.
    assert not list(layer.rglob("__pycache__"))
