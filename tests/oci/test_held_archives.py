"""`held_archives`, which tells the registry path what it need not fetch, counts a layer as
held exactly when deploy would skip it: never a folder a killed deploy left unrecorded or
mid-compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.deploy_support import deploy_in_subprocess, fake_stack
from tests.deploy.deploy_support import quick_deploy as deploy
from venvlayers.contract import read_stack_metadata
from venvlayers.deploy import held_archives


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    return {"v1": fake_stack(root, version=1), "v2": fake_stack(root, version=2)}


def shas(output: Path) -> dict[str, str]:
    _, layers = read_stack_metadata(output)
    return {la.install_target: la.archive.archive_hashes["sha256"] for la in layers if la.archive}


def test_every_layer_of_a_finished_deploy_is_held(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    assert held_archives(target) == {}
    deploy(published["v1"], target)
    assert held_archives(target) == shas(published["v1"])


def test_folders_a_deploy_killed_before_its_record_moved_in_are_not_held(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    deploy(published["v1"], target)
    killed = deploy_in_subprocess(published["v2"], target, kill_at="record")
    assert killed.returncode == -9, killed.stderr
    # The record still names v1's app archives, but the app folders hold v2's: fetching
    # nothing for them would leave deploy without the archive it must unpack again.
    held = held_archives(target)
    assert "app-hello" not in held and "app-other" not in held
    assert held["cpython@3.11"] == shas(published["v1"])["cpython@3.11"]
    assert held["framework-greet@1"] == shas(published["v1"])["framework-greet@1"]


def test_layers_of_a_deploy_killed_while_compiling_are_not_held(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    killed = deploy_in_subprocess(published["v1"], target, kill_at="compile", compile_bytecode=True)
    assert killed.returncode == -9, killed.stderr
    # The record names every layer, but deploy unpacks them again: none may be skipped.
    assert held_archives(target) == {}


def test_a_layer_whose_marker_was_replaced_is_not_held(
    published: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    deploy(published["v1"], target)
    (target / "app-hello" / ".venvlayers-layer").unlink()
    assert "app-hello" not in held_archives(target)
