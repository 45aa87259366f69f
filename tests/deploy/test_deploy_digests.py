"""A full archive's file digests come from its own manifest, once its sha256 matched.

Deploy no longer hashes every file of a full archive while it writes it: the archive's
sha256 binds the manifest inside it, so each file takes the digest the manifest gives it
(size and execute bit agreeing). What must hold:

- a file the manifest does not describe as written (no manifest at all, as in venvstacks'
  archives; a size that differs; a manifest that is not one) is hashed, so its store entry
  and its file record are right;
- a manifest that lies (a digest that is not its file's) spoils nothing but its own layer:
  its store entry is not trusted, so a layer that holds the real content of that digest
  gets that content, and ``verify`` shows the lying layer's file as changed;
- hard links in an archive end up as the same file as their target and its store entry.

Every case runs in each archive format.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from tests.deploy.deploy_support import (
    FORMATS,
    SITE,
    Entry,
    entries_of,
    private_copy,
    replace_archive,
    run_layer_python,
    stacks_in_every_format,
    store_entries,
    tar_entry,
)
from tests.deploy.deploy_support import (
    quick_deploy as deploy,
)
from venvlayers import layout
from venvlayers.deploy import layer_writer, verify

APP = "app-other"
HELLO = "app-hello"
MODULE = f"{SITE}/other.py"


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return stacks_in_every_format(tmp_path_factory.mktemp("published"))


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def manifest_name(install_target: str) -> str:
    return f"{install_target}/{layout.LAYER_MANIFEST}"


def edit_manifest(
    entries: list[Entry], install_target: str, edit: Callable[[dict[str, Any]], object]
) -> list[Entry]:
    """``entries`` with the layer manifest's document passed through ``edit``."""
    edited = []
    for info, data in entries:
        if info.name == manifest_name(install_target):
            document = json.loads(data)
            edit(document)
            data = json.dumps(document).encode()
            info, data = tar_entry(info.name, data=data)
        edited.append((info, data))
    return edited


def file_entry(document: dict[str, Any], path: str) -> dict[str, Any]:
    (found,) = [e for e in document["entries"] if e["path"] == path]
    return cast(dict[str, Any], found)


def with_claims(entries: list[Entry], files: list[tuple[str, bytes]], claimed: str) -> list[Entry]:
    """app-other's ``entries`` with ``files`` added before its manifest, each described by
    the manifest with its own size and the sha256 ``claimed``."""
    entries = list(entries)
    at = next(i for i, (info, _) in enumerate(entries) if info.name == manifest_name(APP))
    entries[at:at] = [tar_entry(f"{APP}/{path}", data=data) for path, data in files]

    def claim(document: dict[str, Any]) -> None:
        for path, data in files:
            document["entries"].append(
                {"path": path, "type": "file", "size": len(data), "sha256": claimed,
                 "executable": False}
            )  # fmt: skip

    return edit_manifest(entries, APP, claim)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_of(entries: list[Entry], name: str) -> bytes:
    (data,) = [data for info, data in entries if info.name == name]
    return data


def assert_stored_as_content(target: Path, install_target: str, entries: list[Entry]) -> None:
    """Every file of the archive ``entries`` that deploy left as it was (postinstall.py
    rewrites a few) is the store entry named by its real sha256; the layer's module is one."""
    stored = store_entries(target)
    checked = []
    for info, data in entries:
        path = target / info.name
        if not info.isreg() or path.read_bytes() != data:
            continue
        names = [name for name in (sha256(data), f"{sha256(data)}.x") if name in stored]
        assert names, f"{path} has no store entry named by its content"
        assert any(stored[n].stat().st_ino == path.stat().st_ino for n in names), path
        checked.append(info.name)
    assert f"{install_target}/{SITE}/{install_target.removeprefix('app-')}.py" in checked


def test_a_layer_archive_deploys_with_the_digests_of_its_manifest(
    stacks: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    deploy(private_copy(stacks, fmt, tmp_path), target)
    assert run_layer_python(target, "other").stdout.startswith("other v1 says greetings v1")
    for layer in (APP, HELLO):
        assert_stored_as_content(target, layer, entries_of(stacks, layer))
    assert verify(target).ok, verify(target).render()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda entries: [e for e in entries if e[0].name != manifest_name(APP)],
                     id="no-manifest"),
        pytest.param(lambda entries: edit_manifest(entries, APP, lambda doc: doc.update(
            entries=[e for e in doc["entries"] if e["path"] != MODULE])), id="file-left-out"),
        pytest.param(lambda entries: edit_manifest(entries, APP, lambda doc: file_entry(
            doc, MODULE).update(size=file_entry(doc, MODULE)["size"] + 1,
                                sha256="0" * 64)), id="other-size"),
        pytest.param(lambda entries: edit_manifest(entries, APP, lambda doc: file_entry(
            doc, MODULE).update(executable=True, sha256="0" * 64)), id="other-mode"),
        pytest.param(lambda entries: edit_manifest(entries, APP, lambda doc: doc.update(
            format="something-else")), id="not-a-manifest"),
        pytest.param(lambda entries: edit_manifest(entries, APP, lambda doc: file_entry(
            doc, MODULE).update(sha256="not hex")), id="malformed"),
    ],
)  # fmt: skip
def test_files_the_manifest_does_not_describe_are_hashed(
    stacks: dict[str, Path], fmt: str, tmp_path: Path, change: Callable[[list[Entry]], list[Entry]]
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    entries = change(entries_of(stacks, APP))
    replace_archive(source, APP, entries)
    target = tmp_path / "target"
    deploy(source, target)
    assert run_layer_python(target, "other").stdout.startswith("other v1 says greetings v1")
    assert_stored_as_content(target, APP, entries)
    assert verify(target).ok, verify(target).render()


def test_a_manifest_that_lies_spoils_only_its_own_layer(
    stacks: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    # app-other carries a file whose manifest entry gives it the digest (and size) of
    # app-hello's module: the store then holds that file under app-hello's digest.
    hello_module = data_of(entries_of(stacks, HELLO), f"{HELLO}/{SITE}/hello.py")
    lie = b"#" * len(hello_module)
    entries = with_claims(entries_of(stacks, APP), [("lie.txt", lie)], sha256(hello_module))
    source = private_copy(stacks, fmt, tmp_path)
    replace_archive(source, APP, entries)
    # app-other first, alone: its file enters the store under the claimed digest.
    target = tmp_path / "target"
    deploy(source, target, apps=["other"])
    assert not (target / HELLO).exists()
    assert store_entries(target)[sha256(hello_module)].read_bytes() == lie
    report = verify(target)
    assert not report.ok
    assert "lie.txt" in report.render()
    assert run_layer_python(target, "other").stdout.startswith("other v1 says greetings v1")
    # Then app-hello, whose module really has that digest, in a deploy of its own: it gets
    # its own content, and the store entry is made right.
    deploy(source, target)
    assert (target / HELLO / SITE / "hello.py").read_bytes() == hello_module
    assert store_entries(target)[sha256(hello_module)].read_bytes() == hello_module
    assert run_layer_python(target, "hello").stdout.startswith("hello v1 says greetings v1")


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != ".zip"])  # zip has no hard links
def test_hard_links_are_the_file_they_link_to(
    stacks: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    entries = entries_of(stacks, APP)
    link = tarfile.TarInfo(f"{APP}/{SITE}/other_alias.py")
    link.type = tarfile.LNKTYPE
    link.linkname = f"{APP}/{MODULE}"
    link.mtime = 1_700_000_000
    manifest_at = next(i for i, (info, _) in enumerate(entries) if info.name == manifest_name(APP))
    entries.insert(manifest_at, (link, b""))
    module = data_of(entries, f"{APP}/{MODULE}")

    def add(document: dict[str, Any]) -> None:
        document["entries"].append(
            {**file_entry(document, MODULE), "path": link.name[len(APP) + 1 :]}
        )

    source = private_copy(stacks, fmt, tmp_path)
    replace_archive(source, APP, edit_manifest(entries, APP, add))
    target = tmp_path / "target"
    deploy(source, target)
    alias = target / APP / SITE / "other_alias.py"
    original = target / APP / MODULE
    assert alias.read_bytes() == module
    entry = store_entries(target)[sha256(module)]
    assert alias.stat().st_ino == original.stat().st_ino == entry.stat().st_ino
    assert verify(target).ok, verify(target).render()


def test_a_file_that_lies_in_a_manifest_is_not_what_a_later_file_of_it_gets(
    stacks: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    # Within one archive: "lie.txt" claims the digest of "real.txt", which follows it.
    real = b"the real content\n"
    lie = b"#" * len(real)
    entries = with_claims(
        entries_of(stacks, APP), [("lie.txt", lie), ("real.txt", real)], sha256(real)
    )
    source = private_copy(stacks, fmt, tmp_path)
    replace_archive(source, APP, entries)
    target = tmp_path / "target"
    deploy(source, target, apps=["other"])
    assert (target / APP / "real.txt").read_bytes() == real
    assert store_entries(target)[sha256(real)].read_bytes() == real
    assert "lie.txt" in verify(target).render()


def test_a_manifest_too_large_to_keep_is_not_believed(
    stacks: dict[str, Path], fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same lie as above, in a manifest past the size deploy keeps in memory: the file
    # is hashed, so it is stored as what it holds and verify finds the layer as deployed.
    monkeypatch.setattr(layer_writer, "MAX_MANIFEST_BYTES", 64)
    real = b"the real content\n"
    lie = b"#" * len(real)
    entries = with_claims(entries_of(stacks, APP), [("lie.txt", lie)], sha256(real))
    source = private_copy(stacks, fmt, tmp_path)
    replace_archive(source, APP, entries)
    target = tmp_path / "target"
    deploy(source, target, apps=["other"])
    assert sha256(real) not in store_entries(target)
    assert_stored_as_content(target, APP, entries)
    assert verify(target).ok, verify(target).render()
