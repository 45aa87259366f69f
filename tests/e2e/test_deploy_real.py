"""Deploy real layers (a copied CPython runtime, uv venvs) and use them through the CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.deploy_support import FEATURE, RUNTIME, real_stack
from tests.e2e.helpers import venvlayers

pytestmark = pytest.mark.slow

FW1, FW2 = "framework-greet@1", "framework-greet@2"


@pytest.fixture(scope="module")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real layers built once for this module; the runtime is shared by both versions."""
    root = tmp_path_factory.mktemp("real-stack")
    real_stack(root, framework_version=1)
    real_stack(root, framework_version=2)
    return root


@pytest.fixture(scope="module")
def deployed(real_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 deployed through the CLI (shared by the read-only tests below)."""
    target = tmp_path_factory.mktemp("deployed") / "apps"
    result = venvlayers("deploy", real_root / "published-1", "--target", target)
    for name in (RUNTIME, FW1, "app-hello", "app-other"):
        assert f"{name}: deployed" in result.stdout
    return target


def test_both_apps_run_with_their_framework(deployed: Path) -> None:
    hello = venvlayers("run", deployed, "hello", "one", "two")
    assert hello.stdout == f"hello v1 says real greetings from {deployed}/app-hello args=one,two\n"
    other = venvlayers("run", deployed, "app-other")
    assert other.stdout.startswith(f"other v1 says real greetings from {deployed}/app-other")


def test_exit_status_and_arguments_pass_through(deployed: Path) -> None:
    done = venvlayers("run", deployed, "hello", "--exit", "3", check=False)
    assert done.returncode == 3
    assert done.stdout.endswith("args=--exit,3\n")


def test_runtime_and_framework_layers_run_their_python(deployed: Path) -> None:
    code = "import sys; print(sys.prefix); print(sys.base_prefix)"
    runtime = venvlayers("run", deployed, RUNTIME, "-c", code).stdout.split()
    assert runtime == [str(deployed / RUNTIME)] * 2
    framework = venvlayers("run", deployed, "greet", "-c", code).stdout.split()
    assert framework == [str(deployed / FW1), str(deployed / RUNTIME)]


def test_bytecode_compiled_beside_the_final_place_reports_final_paths(deployed: Path) -> None:
    """postinstall.py compiled each layer in its partial folder; imports still name the
    final files (CPython corrects co_filename of cached code on import)."""
    cache = deployed / FW1 / f"lib/python{FEATURE}/site-packages/__pycache__"
    compiled = sorted(cache.glob("greet_real.*.pyc"))
    assert compiled, "postinstall.py did not byte-compile the framework"
    before = compiled[0].stat().st_mtime_ns
    failed = venvlayers("run", deployed, "other", "--fail", check=False)
    assert failed.returncode == 1
    assert f'File "{deployed}/{FW1}/lib/python{FEATURE}/site-packages/greet_real.py"' in (
        failed.stderr
    )
    assert ".partial-" not in failed.stderr
    # The cached code was used as it was, not rewritten.
    assert compiled[0].stat().st_mtime_ns == before


def test_verify_passes_after_deploy_and_use(deployed: Path) -> None:
    venvlayers("run", deployed, "hello")
    result = venvlayers("verify", deployed)
    assert "4 layers match their deployment record" in result.stdout


def test_verify_cli_exits_1_on_drift(real_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "apps"
    venvlayers("deploy", real_root / "published-1", "--target", target, "--app", "hello")
    os_py = target / RUNTIME / f"lib/python{FEATURE}/os.py"
    os_py.write_text(os_py.read_text() + "\n# edited\n")
    done = venvlayers("verify", target, "hello", check=False)
    assert done.returncode == 1
    assert f"changed     lib/python{FEATURE}/os.py" in done.stdout


def test_upgrade_a_versioned_framework_then_collect_the_old_one(
    real_root: Path, tmp_path: Path
) -> None:
    target = tmp_path / "apps"
    venvlayers("deploy", real_root / "published-1", "--target", target)
    upgraded = venvlayers("deploy", real_root / "published-2", "--target", target, "--app", "hello")
    assert f"{RUNTIME}: already deployed" in upgraded.stdout
    assert f"{FW2}: deployed" in upgraded.stdout
    assert (target / FW1).is_dir() and (target / FW2).is_dir()
    assert "hello v2 says" in venvlayers("run", target, "hello").stdout
    assert "other v1 says" in venvlayers("run", target, "other").stdout
    assert "nothing to remove" in venvlayers("gc", target).stdout
    venvlayers("remove", target, "other")
    assert not (target / FW1).exists() and not (target / "app-other").exists()
    assert "hello v2 says" in venvlayers("run", target, "hello").stdout
    assert venvlayers("verify", target).returncode == 0


def test_the_deployed_folder_can_move(deployed: Path, tmp_path: Path) -> None:
    """Layers only point at each other relatively, but pyvenv.cfg names the runtime's
    absolute path: a moved deployment needs its postinstall scripts run again."""
    moved = tmp_path / "moved"
    shutil.copytree(deployed, moved, symlinks=True)
    for layer in (FW1, "app-hello"):
        subprocess.run(
            [moved / RUNTIME / f"bin/python{FEATURE}", moved / layer / "postinstall.py"],
            check=True,
            env={"VENVLAYERS_NO_COMPILE": "1"},
        )
    hello = venvlayers("run", moved, "hello")
    assert f"from {moved}/app-hello" in hello.stdout
