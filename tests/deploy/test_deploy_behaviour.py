"""Deploy, run, redeploy, upgrade, remove and gc with a small fake published stack."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_support import RUNTIME, fake_stack, run_layer_python
from tests.deploy.deploy_support import quick_deploy as deploy
from venvlayers.deploy import gc, remove_apps, run_app, verify
from venvlayers.deploy.record import RECORD_FILE, load_record
from venvlayers.deploy.run import command_for
from venvlayers.errors import DeployError

FW1, FW2 = "framework-greet@1", "framework-greet@2"


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    return {
        "v1": fake_stack(root, version=1),
        # v2: a new version of the versioned framework; every app is rebuilt on it.
        "v2": fake_stack(root, version=2),
    }


def layer_folders(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if not p.name.startswith("."))


def test_deploy_then_run_both_apps(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    messages: list[str] = []
    result = deploy(stacks["v1"], target, report=messages.append)
    assert result.deployed == (RUNTIME, FW1, "app-hello", "app-other")
    assert result.skipped == ()
    assert result.apps == ("app-hello", "app-other")
    assert layer_folders(target) == sorted([RUNTIME, FW1, "app-hello", "app-other"])
    assert all((target / name).stat().st_mode & 0o777 == 0o755 for name in layer_folders(target))
    # Every archive is checked before the first one is unpacked.
    checks = [i for i, m in enumerate(messages) if "checking" in m]
    assert len(checks) == 4 and max(checks) < messages.index(f"{RUNTIME}: unpacking")
    # postinstall.py ran in each layered env: pyvenv.cfg and a relative link to the runtime.
    cfg = (target / "app-hello/pyvenv.cfg").read_text()
    assert f"home = {target / RUNTIME / 'bin'}" in cfg
    assert os.readlink(target / "app-hello/bin/python") == f"../../{RUNTIME}/bin/python3.11"
    hello = run_layer_python(target, "hello", "x")
    other = run_layer_python(target, "other")
    assert hello.stdout == "hello v1 says greetings v1 args=x\n", hello.stderr
    assert other.stdout == "other v1 says greetings v1 args=\n", other.stderr
    assert not list(target.glob(".*partial*"))
    assert verify(target).ok


def test_the_record_lists_apps_and_their_layers(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target, apps=["hello"])
    data = json.loads((target / RECORD_FILE).read_text())
    assert list(data["apps"]) == ["app-hello"]
    layers = data["apps"]["app-hello"]["layers"]
    assert [ref["install_target"] for ref in layers] == [RUNTIME, FW1, "app-hello"]
    published = json.loads((stacks["v1"] / "__venvstacks__/venvstacks.json").read_text())
    hashes = {
        entry["install_target"]: entry["archive_hashes"]["sha256"]
        for kind in published["layers"].values()
        for entry in kind
    }
    assert all(ref["sha256"] == hashes[ref["install_target"]] for ref in layers)
    assert "app-other" not in layer_folders(target)


def test_redeploy_is_a_no_op(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    before = {p: p.stat().st_ino for p in target.rglob("*") if ".venvlayers" not in p.parts}
    messages: list[str] = []
    result = deploy(stacks["v1"], target, report=messages.append)
    assert result.deployed == ()
    assert result.skipped == (RUNTIME, FW1, "app-hello", "app-other")
    assert not any("unpacking" in m or "checking" in m for m in messages)
    after = {p: p.stat().st_ino for p in target.rglob("*") if ".venvlayers" not in p.parts}
    assert after == before


def test_a_new_framework_version_deploys_beside_the_old_one_and_gc_waits(
    stacks: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    result = deploy(stacks["v2"], target, apps=["hello"])
    # The runtime is shared and unchanged; the framework's new version goes beside the old.
    assert result.skipped == (RUNTIME,)
    assert result.deployed == (FW2, "app-hello")
    assert {FW1, FW2} <= set(layer_folders(target))
    assert run_layer_python(target, "hello").stdout.startswith("hello v2 says greetings v2")
    assert run_layer_python(target, "other").stdout.startswith("other v1 says greetings v1")
    # app-other still uses framework v1: nothing to collect yet.
    assert gc(target, dry_run=True) == ()
    assert gc(target) == ()
    deploy(stacks["v2"], target, apps=["other"])
    assert gc(target, dry_run=True) == (FW1,)
    assert FW1 in layer_folders(target)
    assert gc(target) == (FW1,)
    assert layer_folders(target) == sorted([RUNTIME, FW2, "app-hello", "app-other"])
    assert FW1 not in load_record(target).layers
    assert run_layer_python(target, "other").stdout.startswith("other v2 says greetings v2")
    assert verify(target).ok


def test_remove_an_app_then_gc(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    assert remove_apps(target, ["hello"]) == ("app-hello",)
    assert "app-hello" not in layer_folders(target)
    # The framework and runtime are still used by app-other.
    assert gc(target) == ()
    assert remove_apps(target, ["app-other"]) == ("app-other",)
    assert gc(target) == (RUNTIME, FW1)
    assert layer_folders(target) == []
    assert load_record(target).apps == {}
    with pytest.raises(DeployError, match="no deployed app named 'hello'"):
        remove_apps(target, ["hello"])


def test_gc_removes_orphan_layer_folders_but_nothing_else(
    stacks: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target, apps=["hello"])
    # A layer folder unpacked by a deploy that died before writing the record, and a
    # folder of the user's own.
    (target / "app-orphan/share/venv/metadata").mkdir(parents=True)
    (target / "app-orphan/share/venv/metadata/venvstacks_layer.json").write_text("{}")
    (target / "notes").mkdir()
    assert gc(target) == ("app-orphan",)
    assert (target / "notes").is_dir()


def test_run_passes_arguments_and_exit_status(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    assert run_app(target, "hello", ["--exit", "7"]) == 7
    assert run_app(target, "app-other", ["--exit", "0"]) == 0
    done = run_layer_python(target, "app-hello", "a b", "--exit", "3")
    assert done.returncode == 3
    assert done.stdout == "hello v1 says greetings v1 args=a b,--exit,3\n"


def test_run_accepts_every_name_of_an_app(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    commands = {name: command_for(target, name, []) for name in ("hello", "app-hello")}
    assert commands["hello"] == commands["app-hello"]
    assert commands["hello"] == [str(target / "app-hello/bin/python"), "-m", "hello"]


def test_run_a_runtime_or_framework_layer_runs_its_python(
    stacks: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    code = "import sys, greet; print(greet.greeting()); sys.exit(5)"
    for name in ("greet", "framework-greet", FW1):
        assert command_for(target, name, ["-c", code])[0] == str(target / FW1 / "bin/python")
    done = run_layer_python(target, "framework-greet", "-c", code)
    assert (done.returncode, done.stdout) == (5, "greetings v1\n")
    runtime = command_for(target, RUNTIME, [])
    assert runtime == [str(target / RUNTIME / "bin/python3.11")]


def test_a_name_resolves_to_the_newest_framework_version(
    stacks: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    deploy(stacks["v2"], target, apps=["hello"])
    assert command_for(target, "greet", [])[0] == str(target / FW2 / "bin/python")
    assert command_for(target, FW1, [])[0] == str(target / FW1 / "bin/python")


def test_unknown_names_are_clear_errors(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    with pytest.raises(DeployError, match="nothing deployed here"):
        run_app(target, "hello", [])
    with pytest.raises(
        DeployError, match=r"no app named 'nope' is published \(apps: hello, other\)"
    ):
        deploy(stacks["v1"], target, apps=["nope"])
    assert not target.exists()
    deploy(stacks["v1"], target, apps=["app-hello"])
    with pytest.raises(DeployError, match=r"no app or layer named 'other' \(apps: hello\)"):
        run_app(target, "other", [])
    with pytest.raises(DeployError, match="no app or layer named 'other'"):
        verify(target, ["other"])


def test_deploy_accepts_the_index_file_as_source(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    result = deploy(stacks["v1"] / "__venvstacks__/venvstacks.json", target, apps=["other"])
    assert result.apps == ("app-other",)
    with pytest.raises(DeployError, match=r"no __venvstacks__/venvstacks\.json"):
        deploy(tmp_path, target)


def test_verify_reports_changed_missing_and_unexpected_files(
    stacks: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    assert verify(target).ok
    site = "lib/python3.11/site-packages"
    (target / FW1 / site / "greet.py").write_text("tampered = True\n")
    (target / "app-hello/lower-paths.txt").unlink()
    (target / "app-hello" / site / "intruder.py").write_text("")
    # Bytecode nobody recorded is as unexpected as any other file: Python would run it.
    (target / "app-other" / site / "__pycache__").mkdir()
    (target / "app-other" / site / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    report = verify(target)
    assert not report.ok
    drift = {layer.install_target: layer for layer in report.layers}
    assert drift[FW1].changed == (f"{site}/greet.py",)
    assert drift["app-hello"].missing == ("lower-paths.txt",)
    assert drift["app-hello"].unexpected == (f"{site}/intruder.py",)
    assert drift["app-other"].unexpected == (
        f"{site}/__pycache__",
        f"{site}/__pycache__/x.cpython-311.pyc",
    )
    assert drift[RUNTIME].ok
    text = report.render()
    assert f"  changed     {site}/greet.py" in text
    assert "3 of 4 layers differ from their deployment record" in text
    # Verifying one app checks only its layers.
    only_other = verify(target, ["other"])
    assert [layer.install_target for layer in only_other.layers] == [RUNTIME, FW1, "app-other"]
    assert verify(target, [RUNTIME]).ok
    assert report.to_json()["layers"]["app-hello"]["missing"] == ["lower-paths.txt"]


def test_verify_reports_a_missing_layer_folder(stacks: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    deploy(stacks["v1"], target, apps=["hello"])
    os.rename(target / FW1, tmp_path / "moved")
    report = verify(target)
    assert not report.ok
    assert f"{FW1}: layer folder missing" in report.render()
    # Deploying again puts it back.
    assert deploy(stacks["v1"], target, apps=["hello"]).deployed == (FW1,)
    assert verify(target).ok


def test_run_in_the_foreground_inherits_stdout(stacks: dict[str, Path], tmp_path: Path) -> None:
    """``run_app`` does not capture: the app writes straight to our stdout."""
    import subprocess

    target = tmp_path / "deploy"
    deploy(stacks["v1"], target)
    code = (
        "import sys; from pathlib import Path; from venvlayers.deploy import run_app;"
        "sys.exit(run_app(Path(sys.argv[1]), 'hello', ['--exit', '4']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 4
    assert done.stdout == "hello v1 says greetings v1 args=--exit,4\n"
