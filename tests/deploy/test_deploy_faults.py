"""Faults: damaged and hostile archives, failing post-install, kill -9, concurrent deploys.

Each test ends with nothing lost: the app deployed before still runs, verify passes, and
the message says what happened.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.deploy.deploy_support import (
    RUNTIME,
    archive_of,
    deploy_command,
    deploy_in_subprocess,
    fake_stack,
    read_tar_entries,
    replace_archive,
    run_layer_python,
    set_published,
    snapshot,
    tar_entry,
    write_archive,
)
from tests.deploy.deploy_support import (
    quick_deploy as deploy,
)
from venvlayers import layout
from venvlayers.deploy import verify
from venvlayers.deploy.dirlock import LOCK_FILE
from venvlayers.deploy.places import recover_leftovers
from venvlayers.errors import DeployError

FW1, FW2 = "framework-greet@1", "framework-greet@2"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    return {"v1": fake_stack(root, version=1), "v2": fake_stack(root, version=2)}


@pytest.fixture
def v2(published: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the v2 output, free to damage."""
    return Path(shutil.copytree(published["v2"], tmp_path / "v2"))


@pytest.fixture
def deployed_v1(published: dict[str, Path], tmp_path: Path) -> Path:
    target = tmp_path / "deploy"
    deploy(published["v1"], target)
    return target


def assert_v1_intact(target: Path) -> None:
    for app in ("hello", "other"):
        done = run_layer_python(target, app)
        assert done.stdout.startswith(f"{app} v1 says greetings v1"), done.stderr
    assert verify(target).ok, verify(target).render()


def assert_v2_complete(target: Path) -> None:
    for app in ("hello", "other"):
        done = run_layer_python(target, app)
        assert done.stdout.startswith(f"{app} v2 says greetings v2"), done.stderr
    assert verify(target).ok, verify(target).render()
    assert leftovers(target) == [".venvlayers"]


def leftovers(target: Path) -> list[str]:
    """Hidden names, but for the versioned folders that layer paths link to."""
    linked = {os.readlink(p) for p in target.iterdir() if p.is_symlink()}
    return sorted(
        p.name for p in target.iterdir() if p.name.startswith(".") and p.name not in linked
    )


# --- damaged archives ------------------------------------------------------------------------


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("corrupt", "does not match its published sha256"),
        ("truncate", "bytes, the metadata says"),
        ("tamper", "does not match its published sha256"),
        ("delete", "is missing"),
    ],
)
def test_a_damaged_archive_is_refused_before_anything_changes(
    deployed_v1: Path, v2: Path, damage: str, message: str
) -> None:
    # The damaged archive is the last one deployed: the checks of all come first.
    archive = archive_of(v2, "app-other")
    if damage == "corrupt":
        flip_byte(archive)
    elif damage == "truncate":
        archive.write_bytes(archive.read_bytes()[:-100])
    elif damage == "tamper":
        # Other content, with the published size adjusted: only the hash can tell.
        write_archive(archive, [tar_entry("app-other", tarfile.DIRTYPE),
                                tar_entry("app-other/x.py", data=b"evil = 1\n")])  # fmt: skip
        set_published(v2, "app-other", size=archive.stat().st_size)
    elif damage == "delete":
        archive.unlink()
    before = snapshot(deployed_v1)
    with pytest.raises(DeployError) as caught:
        deploy(v2, deployed_v1)
    text = str(caught.value)
    assert message in text
    assert str(archive) in text and f"nothing in {deployed_v1} was changed" in text
    assert "\n" not in text
    assert snapshot(deployed_v1) == before
    assert_v1_intact(deployed_v1)


def test_a_refused_first_deploy_leaves_no_folder(v2: Path, tmp_path: Path) -> None:
    flip_byte(archive_of(v2, RUNTIME))
    target = tmp_path / "fresh"
    with pytest.raises(DeployError, match="does not match its published sha256"):
        deploy(v2, target)
    assert not target.exists()


# --- hostile archives (published with matching size and hash) --------------------------------

HOSTILE = {
    "dot-dot": (tar_entry("app-other/../escaped.txt", data=b"x"), "'..' part"),
    "absolute": (tar_entry("/tmp/venvlayers-escaped.txt", data=b"x"), "absolute path"),
    # Links may lead into the layers an app is built on (venvstacks links bin/python_ to
    # its runtime's python), never into any other.
    "escaping-symlink": (
        tar_entry("app-other/evil", tarfile.SYMTYPE, link="../app-hello/lower-paths.txt"),
        "link leaving its layer",
    ),
    "climbing-from-a-lower-layer": (
        tar_entry("app-other/evil", tarfile.SYMTYPE, link=f"../{RUNTIME}/../app-hello"),
        "link leaving its layer",
    ),
    "device": (tar_entry("app-other/null", tarfile.CHRTYPE), "device file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_before_anything_changes(
    deployed_v1: Path, v2: Path, case: str
) -> None:
    entry, reason = HOSTILE[case]
    good = tar_entry("app-other", tarfile.DIRTYPE), tar_entry("app-other/ok.txt", data=b"ok")
    replace_archive(v2, "app-other", [*good, entry])
    before = snapshot(deployed_v1)
    with pytest.raises(DeployError, match=reason) as caught:
        deploy(v2, deployed_v1)
    assert "app-other.tar.zst: refused, member" in str(caught.value)
    assert snapshot(deployed_v1) == before
    assert not Path("/tmp/venvlayers-escaped.txt").exists()
    assert not (deployed_v1 / "escaped.txt").exists()
    assert_v1_intact(deployed_v1)


# --- failing post-install ---------------------------------------------------------------------


def test_a_failing_postinstall_stops_the_deploy_and_keeps_the_old_app(
    deployed_v1: Path, v2: Path
) -> None:
    # Rebuild app-hello's archive with a postinstall.py that fails.
    entries = read_tar_entries(archive_of(v2, "app-hello"))
    failing = b"import sys\nsys.stderr.write('cannot link this layer\\n')\nsys.exit(1)\n"
    entries = [
        tar_entry(m.name, data=failing, mode=0o644)
        if m.name == f"app-hello/{layout.POSTINSTALL_SCRIPT}"
        else (m, data)
        for m, data in entries
    ]
    replace_archive(v2, "app-hello", entries)
    with pytest.raises(DeployError) as caught:
        deploy(v2, deployed_v1)
    text = str(caught.value)
    assert "app-hello: postinstall.py failed (exit 1)" in text
    assert "cannot link this layer" in text
    assert "the apps deployed before still work" in text
    # The versioned framework's new version went in beside the old; the apps are untouched.
    assert (deployed_v1 / FW2).is_dir()
    assert not list(deployed_v1.glob(".app-hello.*"))
    assert_v1_intact(deployed_v1)


# --- kill -9 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kill_at", ["extract:app-hello", "postinstall:app-hello", "postinstall:framework-greet@2"]
)
def test_a_deploy_killed_before_moving_a_layer_in_loses_nothing(
    deployed_v1: Path, published: dict[str, Path], kill_at: str
) -> None:
    killed = deploy_in_subprocess(published["v2"], deployed_v1, kill_at=kill_at)
    assert killed.returncode == -9, killed.stderr
    assert list(deployed_v1.glob(f".{kill_at.partition(':')[2]}.partial-*"))
    assert_v1_intact(deployed_v1)
    # Running it again cleans up and finishes the job.
    again = deploy_in_subprocess(published["v2"], deployed_v1)
    assert again.returncode == 0, again.stderr
    assert "left over from an interrupted deploy" in again.stderr
    assert_v2_complete(deployed_v1)


def test_a_deploy_killed_before_writing_the_record_is_finished_by_the_next(
    deployed_v1: Path, published: dict[str, Path]
) -> None:
    killed = deploy_in_subprocess(published["v2"], deployed_v1, kill_at="record")
    assert killed.returncode == -9
    # Every layer is in place, so the apps already run the new version.
    for app in ("hello", "other"):
        assert run_layer_python(deployed_v1, app).returncode == 0
    again = deploy_in_subprocess(published["v2"], deployed_v1)
    assert again.returncode == 0, again.stderr
    assert_v2_complete(deployed_v1)


def test_a_folder_placed_with_the_exchange_is_recovered_if_replaced_without_it(
    deployed_v1: Path, published: dict[str, Path]
) -> None:
    """The residual two-rename path: a real folder (placed where the exchange worked)
    replaced where it does not. A kill between the renames is undone by the next deploy."""
    killed = deploy_in_subprocess(
        published["v2"], deployed_v1, kill_at="swap:app-hello", exchange=False
    )
    assert killed.returncode == -9
    assert not (deployed_v1 / "app-hello").exists()
    assert list(deployed_v1.glob(".app-hello.old-*"))
    again = deploy_in_subprocess(published["v2"], deployed_v1)
    assert again.returncode == 0, again.stderr
    assert "app-hello: restored after an interrupted deploy" in again.stderr
    assert_v2_complete(deployed_v1)


def test_a_first_deploy_killed_midway_is_finished_by_the_next(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    killed = deploy_in_subprocess(published["v1"], target, kill_at=f"postinstall:{FW1}")
    assert killed.returncode == -9
    assert (target / RUNTIME).is_dir() and not (target / FW1).exists()
    again = deploy_in_subprocess(published["v1"], target)
    assert again.returncode == 0, again.stderr
    # The runtime was moved in before the kill, but no record named it: unpacked again.
    assert f"deployed={RUNTIME},{FW1},app-hello,app-other" in again.stdout
    assert_v1_intact(target)


def test_recovery_restores_or_deletes_each_kind_of_leftover(tmp_path: Path) -> None:
    target = tmp_path
    (target / ".app-a.old-1a2b").mkdir()  # app-a missing: the old folder comes back
    (target / ".app-b.old-3c4d").mkdir()  # app-b present: the old one goes
    (target / "app-b").mkdir()
    (target / ".app-c.partial-x_y").mkdir()
    (target / ".app-d.trash-5e6f").mkdir()
    (target / ".git").mkdir()
    messages: list[str] = []
    recover_leftovers(target, messages.append)
    assert sorted(p.name for p in target.iterdir()) == [".git", "app-a", "app-b"]
    assert "app-a: restored after an interrupted deploy" in messages


# --- concurrency ------------------------------------------------------------------------------


def test_two_deploys_at_once_are_serialised(published: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    (target / LOCK_FILE).parent.mkdir(parents=True)
    # Hold the lock ourselves, so both deploys must wait for it (no timing involved).
    with (target / LOCK_FILE).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        procs = [
            subprocess.Popen(
                deploy_command(published["v1"], target),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for proc in procs:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith("waiting for another deploy into"):
                    assert str(target) in line
                    break
            else:
                raise AssertionError(f"deploy exited without waiting: {proc.wait()}")
        assert not (target / RUNTIME).exists()
    outputs = [proc.communicate() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    deployed = sorted(out.splitlines()[0] for out, _err in outputs)
    # One unpacked everything; the other found it all in place.
    assert deployed == ["deployed=", f"deployed={RUNTIME},{FW1},app-hello,app-other"]
    assert_v1_intact(target)
