"""A deploy killed at any step: the record and the folders never disagree unnoticed, and
every layer path keeps a layer, also where no atomic exchange exists.

Kills come through the deploy's step hook, set up in a child process (see
tests/deploy/deploy_support.py DEPLOY_SCRIPT).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.deploy.deploy_support import RUNTIME, deploy_in_subprocess, fake_stack, run_layer_python
from tests.deploy.deploy_support import quick_deploy as deploy
from venvlayers.deploy import gc, remove_apps, verify
from venvlayers.deploy.files import FILES_DIR
from venvlayers.deploy.record import load_record
from venvlayers.deploy.steps import STEPS
from venvlayers.errors import DeployError

FW1, FW2 = "framework-greet@1", "framework-greet@2"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    return {"v1": fake_stack(root, version=1), "v2": fake_stack(root, version=2)}


def says(target: Path, app: str) -> str:
    done = run_layer_python(target, app)
    assert done.returncode == 0, done.stderr
    return done.stdout


def hidden(target: Path) -> list[str]:
    linked = {os.readlink(p) for p in target.iterdir() if p.is_symlink()}
    return sorted(
        p.name for p in target.iterdir() if p.name.startswith(".") and p.name not in linked
    )


# --- the hook ---------------------------------------------------------------------------------


def test_the_hook_is_told_every_step_in_order(published: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    deploy(published["v1"], target, apps=["hello"], compile_bytecode=True)
    seen: list[tuple[str, str]] = []
    deploy(published["v2"], target, apps=["hello"], step_hook=lambda s, n: seen.append((s, n)))
    # Layers unpack side by side: each one's "store" step comes at its own pace.
    stored = [(step, name) for step, name in seen if step == "store"]
    assert sorted(stored) == [("store", "app-hello"), ("store", FW2)]
    assert [entry for entry in seen if entry[0] != "store"] == [
        ("extract", FW2), ("postinstall", FW2),
        ("extract", "app-hello"), ("postinstall", "app-hello"),
        ("record", ""), ("compile", ""),
    ]  # fmt: skip
    assert {step for step, _ in seen} <= set(STEPS)


# --- issue 12.8: a stale record after a kill --------------------------------------------------


def test_a_deploy_killed_before_its_record_is_not_taken_for_the_old_one(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(published["v1"], target)
    killed = deploy_in_subprocess(published["v2"], target, kill_at="record")
    assert killed.returncode == -9, killed.stderr
    # The record still names v1, the app folders hold v2: verify and gc see it.
    report = verify(target)
    assert not report.ok
    assert "app-hello: not the folder the record names" in report.render()
    with pytest.raises(DeployError, match="deploy again before collecting"):
        gc(target)
    assert (target / FW2).is_dir(), "gc took nothing away"
    # Deploying v1 again puts v1 back instead of answering "already deployed".
    again = deploy(published["v1"], target)
    assert set(again.deployed) == {"app-hello", "app-other"}
    assert says(target, "hello").startswith("hello v1 says greetings v1")
    assert verify(target).ok, verify(target).render()
    assert gc(target) == (FW2,)


def test_a_deploy_killed_while_compiling_is_finished_by_the_next(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    killed = deploy_in_subprocess(
        published["v1"], target, "hello", kill_at="compile", compile_bytecode=True
    )
    assert killed.returncode == -9, killed.stderr
    assert says(target, "hello").startswith("hello v1")
    assert "byte-compiling did not finish" in verify(target).render()
    again = deploy_in_subprocess(published["v1"], target, "hello", compile_bytecode=True)
    assert again.returncode == 0, again.stderr
    assert f"deployed={RUNTIME},{FW1},app-hello" in again.stdout
    assert verify(target).ok, verify(target).render()


@pytest.mark.parametrize("kill_at", ["extract:app-other", "postinstall:app-other", "record"])
def test_after_a_kill_at_any_step_the_next_deploy_agrees_with_verify(
    published: dict[str, Path], tmp_path: Path, kill_at: str
) -> None:
    target = tmp_path / "deploy"
    deploy(published["v1"], target)
    killed = deploy_in_subprocess(published["v2"], target, kill_at=kill_at)
    assert killed.returncode == -9
    again = deploy_in_subprocess(published["v2"], target)
    assert again.returncode == 0, again.stderr
    assert verify(target).ok, verify(target).render()
    assert says(target, "other").startswith("other v2 says greetings v2")
    # Only the file records of the layers recorded are kept.
    records = sorted(p.name.split(".")[-2] for p in (target / FILES_DIR).iterdir())
    assert records == sorted(layer.token for layer in load_record(target).layers.values())


# --- issue 12.9: no layer path is ever empty, even without an atomic exchange -------------------


def test_without_an_exchange_a_killed_replacement_leaves_the_old_layer(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    first = deploy_in_subprocess(published["v1"], target, exchange=False)
    assert first.returncode == 0, first.stderr
    assert (target / "app-hello").is_symlink()
    killed = deploy_in_subprocess(published["v2"], target, kill_at="swap:app-hello", exchange=False)
    assert killed.returncode == -9
    # The app still starts, as it was, and verify agrees with it.
    assert says(target, "hello").startswith("hello v1 says greetings v1")
    again = deploy_in_subprocess(published["v2"], target, exchange=False)
    assert again.returncode == 0, again.stderr
    assert says(target, "hello").startswith("hello v2 says greetings v2")
    assert verify(target).ok, verify(target).render()
    assert hidden(target) == [".venvlayers"]


def test_linked_layers_are_run_verified_removed_and_collected(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    assert deploy_in_subprocess(published["v1"], target, exchange=False).returncode == 0
    assert deploy_in_subprocess(published["v2"], target, "hello", exchange=False).returncode == 0
    assert says(target, "other").startswith("other v1")
    assert verify(target).ok, verify(target).render()
    (target / FW1 / "intruder.txt").write_text("x")
    assert "intruder.txt" in verify(target).render()
    (target / FW1 / "intruder.txt").unlink()
    assert remove_apps(target, ["other"]) == ("app-other",)
    assert gc(target) == (FW1,)
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted([".venvlayers", RUNTIME, FW2, "app-hello", *_versioned(target)])
    assert says(target, "hello").startswith("hello v2")
    for name in (RUNTIME, FW2, "app-hello"):
        shutil.rmtree(target / os.readlink(target / name))
    assert "layer folder missing" in verify(target).render()


def _versioned(target: Path) -> list[str]:
    return [os.readlink(p) for p in target.iterdir() if p.is_symlink()]
