"""Preparing through the cache, the auto fallback chain, and copying into a layer."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import urllib.error
from pathlib import Path

import pytest

from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime import (
    MIRROR_ENV,
    SOURCE_ENV,
    PreparedRuntime,
    copy_runtime,
    default_cache_dir,
    prepare_runtime,
    standalone,
)
from venvlayers.runtime import pbs_archives as archive_module
from venvlayers.runtime.cache import RuntimeCache
from venvlayers.runtime.pbs_archives import host_triples
from venvlayers.spec.model import PythonImplementation

CPYTHON_311 = PythonImplementation("cpython", "3.11")


def make_archive(folder: Path, version: str) -> Path:
    """A python-build-standalone style archive whose interpreter answers as ``version``."""
    feature = version.rsplit(".", 1)[0]
    tree = folder / f".tree-{version}" / "python"
    facts = {
        "implementation": "cpython",
        "version": version,
        "prefix": "/p",
        "base_prefix": "/p",
        "executable": "/p/bin/python",
        "build_prefix": "/p",
        "stdlib": "/p/lib",
        "include": "/p/include",
        "ldlibrary": "",
        "shared": False,
    }
    python = tree / "bin" / f"python{feature}"
    python.parent.mkdir(parents=True)
    # Shell builtins only: these tests run with an empty PATH.
    python.write_text(f"#!/bin/sh\necho '{json.dumps(facts)}'\n")
    python.chmod(0o755)
    (tree / "bin" / "python3").symlink_to(python.name)
    (tree / "lib").mkdir()
    archive = (
        folder / f"cpython-{version}+20240107-{host_triples()[0]}-install_only_stripped.tar.gz"
    )
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="python")
    shutil.rmtree(tree.parent)
    return archive


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No mirror, no network, and no local interpreter unless a test provides one."""
    for name in (MIRROR_ENV, SOURCE_ENV, "VENVLAYERS_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PYENV_ROOT", str(empty))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(empty))
    monkeypatch.setenv("PATH", str(empty))

    def offline(url: str, dest: Path, *, timeout: float = 0) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(standalone, "fetch_url", offline)


class UnpackCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = archive_module.unpack_runtime

        def counting(archive: Path, dest: Path) -> None:
            self.calls += 1
            real(archive, dest)

        monkeypatch.setattr(archive_module, "unpack_runtime", counting)


def test_second_prepare_is_a_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_archive(tmp_path / "a", "3.11.7")
    counter = UnpackCounter(monkeypatch)
    messages: list[str] = []

    def prepare() -> PreparedRuntime:
        return prepare_runtime(
            CPYTHON_311,
            source="archive",
            source_path=str(archive),
            cache_dir=tmp_path / "cache",
            report=messages.append,
        )

    first = prepare()
    second = prepare()
    assert first == second
    assert counter.calls == 1
    assert (
        messages[-1] == f"runtime cpython@3.11: using the cached 3.11.7 (archive, from {archive})"
    )

    entry = json.loads((first.root.parent / "venvlayers-runtime.json").read_text())
    assert {k: entry[k] for k in ("implementation", "version", "source", "origin", "python")} == {
        "implementation": "cpython",
        "version": "3.11.7",
        "source": "archive",
        "origin": str(archive),
        "python": "bin/python3.11",
    }
    assert first.root.parent.name.startswith("cpython-3.11.7-archive-")


def test_a_changed_archive_is_a_new_cache_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_archive(tmp_path / "a", "3.11.7")
    counter = UnpackCounter(monkeypatch)
    first = prepare_runtime(
        CPYTHON_311, source="archive", source_path=str(archive), cache_dir=tmp_path / "c"
    )
    replacement = make_archive(tmp_path / "b", "3.11.7")
    with replacement.open("ab") as stream:
        stream.write(b"\0" * 1024)  # same content, different bytes
    shutil.copyfile(replacement, archive)
    second = prepare_runtime(
        CPYTHON_311, source="archive", source_path=str(archive), cache_dir=tmp_path / "c"
    )
    assert counter.calls == 2
    assert first.root != second.root


def test_failed_preparation_leaves_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_archive(tmp_path / "a", "3.11.7")

    def broken(archive: Path, dest: Path) -> None:
        (dest / "half-written").write_text("x")
        raise RuntimeProviderError("disk full")

    monkeypatch.setattr(archive_module, "unpack_runtime", broken)
    with pytest.raises(RuntimeProviderError, match=r"^cpython@3\.11: disk full$"):
        prepare_runtime(
            CPYTHON_311, source="archive", source_path=str(archive), cache_dir=tmp_path / "c"
        )
    assert list((tmp_path / "c" / "runtimes").iterdir()) == []


def test_incomplete_cache_entry_is_not_trusted(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a", "3.11.7")
    prepared = prepare_runtime(
        CPYTHON_311, source="archive", source_path=str(archive), cache_dir=tmp_path / "c"
    )
    (prepared.root.parent / "venvlayers-runtime.json").unlink()
    assert RuntimeCache(tmp_path / "c").newest(CPYTHON_311) is None
    again = prepare_runtime(
        CPYTHON_311, source="archive", source_path=str(archive), cache_dir=tmp_path / "c"
    )
    assert again == prepared
    assert (again.root.parent / "venvlayers-runtime.json").is_file()


def test_auto_uses_the_cache_first(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a", "3.11.7")
    prepare_runtime(
        CPYTHON_311, source="archive", source_path=str(archive), cache_dir=tmp_path / "c"
    )
    messages: list[str] = []
    prepared = prepare_runtime(CPYTHON_311, cache_dir=tmp_path / "c", report=messages.append)
    assert (prepared.source, prepared.version) == ("archive", "3.11.7")
    assert messages == [f"runtime cpython@3.11: using the cached 3.11.7 (archive, from {archive})"]


def test_auto_takes_the_mirror_folder_before_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_archive(tmp_path / "mirror", "3.11.9")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    messages: list[str] = []
    prepared = prepare_runtime(CPYTHON_311, cache_dir=tmp_path / "c", report=messages.append)
    assert (prepared.source, prepared.version) == ("standalone", "3.11.9")
    assert (
        messages[0]
        == f"runtime cpython@3.11: no prepared runtime in the cache {tmp_path / 'c' / 'runtimes'}"
    )
    assert messages[1].startswith(
        f"runtime cpython@3.11: preparing 3.11.9 from archive folder {tmp_path / 'mirror'}"
    )


def test_auto_falls_back_from_mirror_to_download_to_local_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_archive(tmp_path / "mirror", "3.12.1")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    messages: list[str] = []
    with pytest.raises(RuntimeProviderError) as error:
        prepare_runtime(CPYTHON_311, cache_dir=tmp_path / "c", report=messages.append)
    skipped = [m for m in messages if ": skipped " in m]
    # An unreachable download host is expected offline: no skip line, only the final error.
    assert len(skipped) == 2
    assert skipped[0] == (
        f"runtime cpython@3.11: skipped standalone: archive folder {tmp_path / 'mirror'}:"
        " no match (available: 3.12.1 (archive folder))"
    )
    empty = tmp_path / "empty"
    assert skipped[1] == (
        "runtime cpython@3.11: skipped local: local interpreters: no match (available: nothing;"
        f" searched pyenv {empty / 'versions'}, uv {empty}, python3.X on PATH)"
    )
    message = str(error.value)
    assert message.startswith("cpython@3.11: no runtime source can provide it: standalone: archive")
    assert "; standalone: github.com unreachable (Name or service not known); local:" in message
    assert "local interpreters: no match (available: nothing; searched pyenv" in message
    assert "\n" not in message


def test_auto_without_mirror_says_it_is_not_set(tmp_path: Path) -> None:
    messages: list[str] = []
    with pytest.raises(RuntimeProviderError):
        prepare_runtime(CPYTHON_311, cache_dir=tmp_path / "c", report=messages.append)
    assert f"runtime cpython@3.11: skipped archive mirror: {MIRROR_ENV} is not set" in messages


def test_auto_with_source_path_uses_what_it_names(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a", "3.11.7")
    by_file = prepare_runtime(CPYTHON_311, source_path=str(archive), cache_dir=tmp_path / "c1")
    assert by_file.source == "archive"
    by_folder = prepare_runtime(
        CPYTHON_311, source_path=str(archive.parent), cache_dir=tmp_path / "c2"
    )
    assert by_folder.source == "standalone"
    with pytest.raises(RuntimeProviderError, match="no such interpreter"):
        prepare_runtime(
            CPYTHON_311, source_path=str(tmp_path / "nothing"), cache_dir=tmp_path / "c3"
        )


def test_unknown_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        RuntimeProviderError, match=r"^cpython@3\.11: 'conda' is not a runtime source"
    ):
        prepare_runtime(CPYTHON_311, source="conda", cache_dir=tmp_path)


def test_copy_runtime_copies_files_and_keeps_symlinks(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a", "3.11.7")
    prepared = prepare_runtime(
        CPYTHON_311, source="archive", source_path=str(archive), cache_dir=tmp_path / "c"
    )
    dest = tmp_path / "layers" / "cpython-3.11"
    copy_runtime(prepared, dest)
    assert os.readlink(dest / "bin" / "python3") == "python3.11"
    assert (dest / "bin" / "python3.11").read_bytes() == (
        prepared.root / "bin/python3.11"
    ).read_bytes()
    # A copy, not a hard link: changing the layer never changes the cache.
    assert (dest / "bin/python3.11").stat().st_ino != (
        prepared.root / "bin/python3.11"
    ).stat().st_ino
    assert not (dest / "venvlayers-runtime.json").exists()
    with pytest.raises(RuntimeProviderError, match="already exists"):
        copy_runtime(prepared, dest)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / ".cache" / "venvlayers"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "venvlayers"
    monkeypatch.setenv("VENVLAYERS_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
