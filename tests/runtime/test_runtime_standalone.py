"""python-build-standalone archives: checksums, safe extraction, layouts, mirrors, downloads.

No network: archives are built here, and only the download function is replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest

from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime import MIRROR_ENV, prepare_runtime, standalone
from venvlayers.runtime.pbs_archives import (
    extract_archive,
    host_triples,
    parse_archive_name,
    runtime_root_in,
    unpack_runtime,
)
from venvlayers.spec.model import PythonImplementation

TRIPLE = host_triples()[0]
on_linux_x86_64 = pytest.mark.skipif(
    TRIPLE != "x86_64-unknown-linux-gnu", reason="expects the x86_64 Linux entries of the index"
)


def archive_name(version: str, flavour: str = "install_only_stripped", triple: str = TRIPLE) -> str:
    return f"cpython-{version}+20240107-{triple}-{flavour}.tar.gz"


def fake_tree(root: Path, version: str) -> None:
    """A minimal runtime tree whose interpreter answers the probe as CPython ``version``."""
    feature = version.rsplit(".", 1)[0]
    facts = {
        "implementation": "cpython",
        "version": version,
        "prefix": "/install",
        "base_prefix": "/install",
        "executable": f"/install/bin/python{feature}",
        "build_prefix": "/install",
        "stdlib": f"/install/lib/python{feature}",
        "include": f"/install/include/python{feature}",
        "ldlibrary": "",
        "shared": False,
    }
    python = root / "bin" / f"python{feature}"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(facts)}\nEOF\n")
    python.chmod(0o755)
    (root / "bin" / "python3").symlink_to(python.name)
    stdlib = root / "lib" / f"python{feature}"
    stdlib.mkdir(parents=True)
    (stdlib / "os.py").write_text("# stand-in\n")


def make_archive(
    folder: Path,
    version: str = "3.11.7",
    *,
    flavour: str = "install_only_stripped",
    triple: str = TRIPLE,
    top: str = "python",
) -> Path:
    """A ``.tar.gz`` laid out like python-build-standalone's (``python/bin/...``)."""
    tree = folder / f".tree-{version}-{flavour}"
    fake_tree(tree / top, version)
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / archive_name(version, flavour, triple)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / top.split("/")[0], arcname=top.split("/")[0])
    shutil.rmtree(tree)
    return archive


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv("VENVLAYERS_RUNTIME_SOURCE", raising=False)


def test_archive_names_are_parsed() -> None:
    name = parse_archive_name(archive_name("3.11.7"))
    assert name is not None
    assert (name.implementation, name.version, name.release, name.triple, name.flavour) == (
        "cpython",
        "3.11.7",
        "20240107",
        TRIPLE,
        "install_only_stripped",
    )
    full = parse_archive_name(
        "cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-pgo+lto-full.tar.zst"
    )
    assert full is not None and full.flavour == "pgo+lto-full"
    assert full.preference > name.preference
    assert parse_archive_name("python-3.11.7.tar.gz") is None


def test_extraction_refuses_members_escaping_the_folder(tmp_path: Path) -> None:
    archive = tmp_path / archive_name("3.11.7")
    with tarfile.open(archive, "w:gz") as tar:
        data = b"owned\n"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(RuntimeProviderError, match="refused unsafe archive member"):
        extract_archive(archive, dest)
    assert not (tmp_path / "escaped.txt").exists()


def test_layouts_install_only_full_and_unknown(tmp_path: Path) -> None:
    install_only = tmp_path / "a"
    fake_tree(install_only / "python", "3.11.7")
    assert runtime_root_in(install_only, origin="a") == install_only / "python"
    full = tmp_path / "b"
    fake_tree(full / "python" / "install", "3.11.7")
    (full / "python" / "build").mkdir()
    assert runtime_root_in(full, origin="b") == full / "python" / "install"
    odd = tmp_path / "c"
    (odd / "usr" / "bin").mkdir(parents=True)
    with pytest.raises(
        RuntimeProviderError, match=r"layout not recognised.*top-level entries: usr$"
    ):
        runtime_root_in(odd, origin="c")


def test_unpack_moves_the_runtime_tree_into_place(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "archives", flavour="pgo+lto-full", top="python/install")
    dest = tmp_path / "runtime"
    dest.mkdir()
    unpack_runtime(archive, dest)
    assert (dest / "bin" / "python3.11").is_file()
    assert (dest / "bin" / "python3").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archives", "runtime"]


def test_explicit_archive_with_good_checksum(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "archives")
    archive.with_name(archive.name + ".sha256").write_text(f"{sha256(archive)}  {archive.name}\n")
    prepared = prepare_runtime(
        PythonImplementation("cpython", "3.11"),
        source="archive",
        source_path=str(archive),
        cache_dir=tmp_path / "cache",
    )
    assert (prepared.version, prepared.source, prepared.python) == (
        "3.11.7",
        "archive",
        "bin/python3.11",
    )
    assert prepared.origin == str(archive)
    assert (prepared.root / "lib/python3.11/os.py").is_file()
    assert prepared.root.is_relative_to(tmp_path / "cache" / "runtimes")


def test_explicit_archive_with_bad_checksum_is_refused(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "archives")
    archive.with_name(archive.name + ".sha256").write_text("0" * 64 + "\n")
    with pytest.raises(RuntimeProviderError) as error:
        prepare_runtime(
            PythonImplementation("cpython", "3.11.7"),
            source="archive",
            source_path=str(archive),
            cache_dir=tmp_path / "cache",
        )
    assert f"sha256 mismatch (expected {'0' * 64}, got {sha256(archive)})" in str(error.value)
    assert not any((tmp_path / "cache").rglob("python3.11"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda d: make_archive(d, triple="aarch64-apple-darwin"),
            "built for aarch64-apple-darwin",
        ),
        (lambda d: d / "missing.tar.gz", "does not exist"),
        (lambda d: make_archive(d).rename(d / "python.tar.gz"), "cannot tell its Python version"),
    ],
)
def test_explicit_archive_errors(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    tmp_path.joinpath("a").mkdir()
    with pytest.raises(RuntimeProviderError, match=message):
        prepare_runtime(
            PythonImplementation("cpython", "3.11"),
            source="archive",
            source_path=str(make(tmp_path / "a")),
            cache_dir=tmp_path / "cache",
        )


def test_checksum_from_a_sha256sums_file(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "archives")
    sums = archive.with_name("SHA256SUMS")
    sums.write_text(f"{'1' * 64}  other.tar.gz\n{'2' * 64} *{archive.name}\n")
    with pytest.raises(RuntimeProviderError, match=f"expected {'2' * 64}"):
        prepare_runtime(
            PythonImplementation("cpython", "3.11"),
            source="archive",
            source_path=str(archive),
            cache_dir=tmp_path / "cache",
        )


def test_interpreter_must_be_the_version_the_name_promises(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "archives", "3.11.5")
    renamed = archive.rename(archive.with_name(archive_name("3.11.7")))
    with pytest.raises(
        RuntimeProviderError, match=r"is cpython@3\.11\.5, but the archive name says"
    ):
        prepare_runtime(
            PythonImplementation("cpython", "3.11"),
            source="archive",
            source_path=str(renamed),
            cache_dir=tmp_path / "cache",
        )
    assert list((tmp_path / "cache" / "runtimes").iterdir()) == []


def test_archive_source_needs_a_path(tmp_path: Path) -> None:
    with pytest.raises(RuntimeProviderError, match='source "archive" needs source_path'):
        prepare_runtime(
            PythonImplementation("cpython", "3.11"), source="archive", cache_dir=tmp_path
        )


def test_archive_version_must_match_the_request(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "archives", "3.12.1")
    with pytest.raises(
        RuntimeProviderError, match=r"no match \(available: 3.12.1 \(archive file\)\)"
    ):
        prepare_runtime(
            PythonImplementation("cpython", "3.11"),
            source="archive",
            source_path=str(archive),
            cache_dir=tmp_path / "cache",
        )


def test_mirror_folder_offers_newest_matching_stripped_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    make_archive(mirror, "3.11.5")
    make_archive(mirror, "3.11.7", flavour="install_only")
    stripped = make_archive(mirror, "3.11.7")
    make_archive(mirror, "3.11.9", triple="aarch64-apple-darwin")  # another platform
    (mirror / "notes.txt").write_text("not an archive\n")
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    messages: list[str] = []

    prepared = prepare_runtime(
        PythonImplementation("cpython", "3.11"),
        source="standalone",
        cache_dir=tmp_path / "cache",
        report=messages.append,
    )
    assert (prepared.version, prepared.source, prepared.origin) == (
        "3.11.7",
        "standalone",
        str(stripped),
    )
    assert f"{stripped.name}: no published sha256 known; not verified" in messages


def test_mirror_folder_from_source_path_and_missing_version(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    make_archive(mirror, "3.11.5")
    with pytest.raises(RuntimeProviderError) as error:
        prepare_runtime(
            PythonImplementation("cpython", "3.12"),
            source="standalone",
            source_path=f"file://{mirror}",
            cache_dir=tmp_path / "cache",
        )
    assert str(error.value) == (
        f"cpython@3.12: archive folder {mirror}: no match (available: 3.11.5 (archive folder))"
    )


def index_entry(archive: Path, url: str) -> tuple[object, str, str | None]:
    name = parse_archive_name(archive.name)
    assert name is not None
    return (name, url, sha256(archive))


class FakeNetwork:
    """Stands in for :func:`standalone.fetch_url`: serves files, records every URL asked."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.urls: list[str] = []

    def __call__(self, url: str, dest: Path, *, timeout: float = 0) -> None:
        self.urls.append(url)
        if url not in self.files:
            raise urllib.error.URLError("Name or service not known")
        shutil.copyfile(self.files[url], dest)


def test_download_goes_through_the_download_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = make_archive(tmp_path / "served")
    url = f"https://releases.invalid/20240107/{served.name.replace('+', '%2B')}"
    monkeypatch.setattr(standalone, "release_index", lambda: (index_entry(served, url),))
    network = FakeNetwork({url: served})
    monkeypatch.setattr(standalone, "fetch_url", network)
    cache = tmp_path / "cache"

    prepared = prepare_runtime(
        PythonImplementation("cpython", "3.11.7"), source="standalone", cache_dir=cache
    )
    assert (prepared.version, prepared.origin) == ("3.11.7", url)
    assert network.urls == [url]
    assert sha256(cache / "downloads" / served.name) == sha256(served)
    assert [p.name for p in (cache / "downloads").iterdir()] == [served.name]

    # A new runtime cache with the archive already downloaded: no second download.
    shutil.rmtree(cache / "runtimes")
    messages: list[str] = []
    prepare_runtime(
        PythonImplementation("cpython", "3.11"),
        source="standalone",
        cache_dir=cache,
        report=messages.append,
    )
    assert network.urls == [url]
    assert any("using the archive downloaded earlier" in m for m in messages)


def test_mirror_url_replaces_the_release_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = make_archive(tmp_path / "served")
    monkeypatch.setattr(
        standalone, "release_index", lambda: (index_entry(served, "https://github.invalid/x"),)
    )
    mirrored = f"https://mirror.invalid/pbs/{served.name.replace('+', '%2B')}"
    network = FakeNetwork({mirrored: served})
    monkeypatch.setattr(standalone, "fetch_url", network)
    monkeypatch.setenv(MIRROR_ENV, "https://mirror.invalid/pbs/")

    prepared = prepare_runtime(
        PythonImplementation("cpython", "3.11"), source="standalone", cache_dir=tmp_path / "c"
    )
    assert network.urls == [mirrored]
    assert prepared.version == "3.11.7"


@on_linux_x86_64
def test_download_failure_says_how_to_work_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = FakeNetwork({})
    monkeypatch.setattr(standalone, "fetch_url", network)
    with pytest.raises(RuntimeProviderError) as error:
        prepare_runtime(
            PythonImplementation("cpython", "3.11.7"), source="standalone", cache_dir=tmp_path
        )
    message = str(error.value)
    # The real release index of pbs-installer picks the real file for this version.
    assert network.urls == [
        "https://github.com/astral-sh/python-build-standalone/releases/download/20240107/"
        "cpython-3.11.7%2B20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
    ]
    assert message.startswith("cpython@3.11.7: download of https://github.com/")
    assert "(Name or service not known)" in message
    assert MIRROR_ENV in message and "--runtime-source local" in message
    assert "\n" not in message
    assert list((tmp_path / "downloads").iterdir()) == []


@on_linux_x86_64
def test_downloaded_file_with_wrong_checksum_is_discarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = make_archive(tmp_path / "served")
    url = (
        "https://github.com/astral-sh/python-build-standalone/releases/download/20240107/"
        "cpython-3.11.7%2B20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
    )
    monkeypatch.setattr(standalone, "fetch_url", FakeNetwork({url: impostor}))
    with pytest.raises(RuntimeProviderError, match="sha256 mismatch"):
        prepare_runtime(
            PythonImplementation("cpython", "3.11.7"), source="standalone", cache_dir=tmp_path
        )
    assert list((tmp_path / "downloads").iterdir()) == []
    assert not (tmp_path / "runtimes").exists() or list((tmp_path / "runtimes").iterdir()) == []


def test_release_index_prefers_stripped_builds_for_this_host() -> None:
    from venvlayers.runtime._base import ProviderContext

    provider = standalone.StandaloneProvider(
        ProviderContext(None, Path("/x"), lambda _m: None), mirror=None
    )
    candidates = provider.candidates("cpython")
    assert candidates, "pbs-installer ships a release index"
    names = [parse_archive_name(c.identity) for c in candidates]
    assert all(n is not None and n.triple == TRIPLE for n in names)
    assert len({c.version for c in candidates}) == len(candidates)
    newest = provider.find(PythonImplementation("cpython", "3.12"))
    assert newest.identity.endswith("-install_only_stripped.tar.gz")
