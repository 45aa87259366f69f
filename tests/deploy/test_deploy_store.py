"""The content store and delta archives at deploy (issue 17).

Every file of every deployed layer is kept once in ``DIR/.venvlayers/store``; layers are
links to it. A delta archive updates a target holding its base; the full archive is the
fallback, and a layer the store can complete reads no archive at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.deploy_support import (
    RUNTIME,
    SITE,
    add_delta,
    archive_of,
    deploy_in_subprocess,
    disk_use,
    fake_stack,
    run_layer_python,
    store_entries,
)
from tests.deploy.deploy_support import quick_deploy as deploy
from venvlayers import layout
from venvlayers.deploy import gc, remove_apps, verify
from venvlayers.deploy.store import Store
from venvlayers.errors import DeployError

FW1, FW2 = "framework-greet@1", "framework-greet@2"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    v1, v2 = fake_stack(root, version=1), fake_stack(root, version=2)
    add_delta(v1, v2, "framework-greet")
    return {"v1": v1, "v2": v2}


def without_full_archive(published: Path, tmp_path: Path, install_target: str) -> Path:
    copy = Path(shutil.copytree(published, tmp_path / "only-delta"))
    archive_of(copy, install_target).unlink()
    return copy


def says(target: Path, app: str) -> str:
    done = run_layer_python(target, app)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_side_by_side_versions_share_the_files_they_have_in_common(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(published["v1"], target, apps=["other"])
    deploy(published["v2"], target, apps=["hello"])
    shared = layout.POSTINSTALL_SCRIPT
    inode = (target / FW1 / shared).stat().st_ino
    assert (target / FW2 / shared).stat().st_ino == inode
    assert (target / RUNTIME / shared).stat().st_ino == inode
    assert (target / FW1 / SITE / "greet.py").stat().st_ino != (
        target / FW2 / SITE / "greet.py"
    ).stat().st_ino
    # Entries are read-only, named by their content, and each is stored once.
    for name, entry in store_entries(target).items():
        assert hashlib.sha256(entry.read_bytes()).hexdigest() == name.removesuffix(".x")
        assert entry.stat().st_mode & 0o222 == 0
    assert says(target, "other").startswith("other v1 says greetings v1")
    assert says(target, "hello").startswith("hello v2 says greetings v2")
    assert verify(target).ok, verify(target).render()
    # A layer is still an ordinary folder: copied elsewhere, it holds its own files.
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", target / FW2, copy], check=True)
    assert (copy / SITE / "greet.py").read_text() == (target / FW2 / SITE / "greet.py").read_text()


def test_a_delta_alone_updates_a_target_holding_its_base(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(published["v1"], target)
    only_delta = without_full_archive(published["v2"], tmp_path, FW2)
    stored_before = set(store_entries(target))
    result = deploy(only_delta, target)
    assert result.sources[FW2] == "delta"
    assert result.link_mode == "hardlink"
    assert says(target, "hello").startswith("hello v2 says greetings v2")
    assert verify(target).ok, verify(target).render()
    # The delta wrote only what v1 lacked: the new greet.py and the new manifest.
    new = set(store_entries(target)) - stored_before
    fw2_new = {
        hashlib.sha256((target / FW2 / path).read_bytes()).hexdigest()
        for path in (f"{SITE}/greet.py", layout.LAYER_MANIFEST)
    }
    assert fw2_new <= new
    assert (target / FW2 / layout.POSTINSTALL_SCRIPT).stat().st_ino == (
        target / FW1 / layout.POSTINSTALL_SCRIPT
    ).stat().st_ino


def test_a_layer_the_store_completes_reads_no_archive(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(published["v2"], target, apps=["hello"])
    assert remove_apps(target, ["hello"]) == ("app-hello",)
    # Dropped from the record but still in the store; both of its archives are gone.
    (target / FW2).rename(tmp_path / "moved-away")
    gone = without_full_archive(published["v2"], tmp_path, FW2)
    (gone / next(d for d in os.listdir(gone) if ".delta-" in d)).unlink()
    result = deploy(gone, target, apps=["hello"])
    assert result.sources[FW2] == "store"
    assert verify(target).ok, verify(target).render()
    assert says(target, "hello").startswith("hello v2 says greetings v2")


def test_a_delta_whose_base_is_missing_falls_back_to_the_full_archive(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    result = deploy(published["v2"], target, apps=["hello"])
    assert result.sources[FW2] == "full"
    assert verify(target).ok, verify(target).render()


def test_a_delta_whose_base_is_missing_and_no_full_archive_fails_in_one_line(
    published: dict[str, Path], tmp_path: Path
) -> None:
    only_delta = without_full_archive(published["v2"], tmp_path, FW2)
    fresh = tmp_path / "fresh"
    with pytest.raises(DeployError) as refused:
        deploy(only_delta, fresh)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{FW2}: the full archive" in message and "is missing" in message
    assert "does not hold its base framework-greet@1" in message
    assert not fresh.exists()
    # A target holding something else is left as it was.
    target = tmp_path / "deploy"
    deploy(published["v2"], target, apps=["other"])
    shutil.rmtree(tmp_path / "deploy-copy", ignore_errors=True)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    remove_apps(target, ["other"])
    gc(target)
    before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    with pytest.raises(DeployError, match="is missing"):
        deploy(only_delta, target)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before


def test_verify_names_every_layer_a_changed_store_entry_affects(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(published["v1"], target, apps=["other"])
    deploy(published["v2"], target, apps=["hello"])
    # Written in place through one layer's link: every layer using the content changes.
    with open(target / FW1 / layout.POSTINSTALL_SCRIPT, "r+b") as stream:
        stream.write(b"#")
    report = verify(target)
    assert not report.ok
    (stale,) = report.stale
    assert stale.layers == tuple(sorted([RUNTIME, FW1, FW2, "app-hello", "app-other"]))
    assert "no longer matches its content hash" in report.render()
    for drift in report.layers:
        assert drift.changed == (layout.POSTINSTALL_SCRIPT,), drift.render()
    # A deploy never links the changed entry again: it is rewritten from an archive.
    fresh = tmp_path / "fresh"
    deploy(published["v2"], fresh, apps=["hello"])
    assert verify(fresh).ok


def test_a_kill_while_writing_the_store_is_completed_by_the_next_deploy(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    killed = deploy_in_subprocess(published["v1"], target, kill_at=f"store:{FW1}")
    assert killed.returncode == -9, killed.stderr
    killed = deploy_in_subprocess(published["v2"], target, kill_at="extract:app-hello")
    assert killed.returncode == -9, killed.stderr
    again = deploy_in_subprocess(published["v1"], target)
    assert again.returncode == 0, again.stderr
    assert verify(target).ok, verify(target).render()
    for name, entry in store_entries(target).items():
        assert hashlib.sha256(entry.read_bytes()).hexdigest() == name.removesuffix(".x")
    assert not (target / ".venvlayers/store/tmp").exists() or not any(
        (target / ".venvlayers/store/tmp").iterdir()
    )
    assert says(target, "hello").startswith("hello v1")


def test_gc_empties_the_store_once_no_layer_uses_it(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    target.mkdir()
    empty = disk_use(target)
    deploy(published["v1"], target)
    deploy(published["v2"], target, apps=["hello"])
    remove_apps(target, ["hello", "other"])
    gc(target)
    assert store_entries(target) == {}
    leftovers = sorted(str(p.relative_to(target)) for p in target.rglob("*") if not p.is_dir())
    assert leftovers == [".venvlayers/deployment.json", ".venvlayers/lock"]
    assert disk_use(target) - empty < 64 * 1024


@pytest.mark.parametrize("mode", ["copy", "hardlink"])
def test_the_link_mode_can_be_chosen(published: dict[str, Path], tmp_path: Path, mode: str) -> None:
    target = tmp_path / "deploy"
    result = deploy(published["v1"], target, apps=["hello"], link_mode=mode)
    assert result.link_mode == mode
    shared = (target / FW1 / layout.POSTINSTALL_SCRIPT).stat()
    assert (shared.st_nlink > 1) == (mode == "hardlink")
    assert verify(target).ok, verify(target).render()


def test_an_unknown_or_unusable_link_mode_is_one_line(
    published: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(DeployError, match="unknown link mode"):
        deploy(published["v1"], tmp_path / "a", link_mode="symlink")


def test_a_full_archive_links_the_files_the_store_holds_instead_of_writing_them(
    published: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No delta and no manifest beside the archives: the archive is the only source, read
    # once; its small files whose content the store holds are linked, not written again.
    source = Path(shutil.copytree(published["v2"], tmp_path / "full-only"))
    for delta in source.glob("*.delta-*"):
        delta.unlink()
    shutil.rmtree(source / "__venvstacks__" / "manifests", ignore_errors=True)
    target = tmp_path / "deploy"
    deploy(published["v1"], target, apps=["other"])
    held = set(store_entries(target))
    stored: list[str] = []
    real_put = Store.put

    def put(self: Store, written: str, key: tuple[str, bool], *, checked: bool = True) -> None:
        stored.append(key[0] + (".x" if key[1] else ""))
        real_put(self, written, key, checked=checked)

    monkeypatch.setattr(Store, "put", put)
    deploy(source, target, apps=["hello"])
    assert stored, "the new files were written"
    assert not held & set(stored), "a file the store held was written again"
    shared = layout.POSTINSTALL_SCRIPT
    assert (target / FW2 / shared).stat().st_ino == (target / FW1 / shared).stat().st_ino
    assert says(target, "hello").startswith("hello v2 says greetings v2")
    assert verify(target).ok, verify(target).render()
