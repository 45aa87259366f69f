"""Build the example stack for real and check what each layer sees."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import EXAMPLE, run_python, venvlayers

pytestmark = pytest.mark.slow

SYS_PATH = "import sys, json; print(json.dumps(sys.path))"


def _meta(layer: Path) -> dict[str, object]:
    data = json.loads((layer / "share/venv/metadata/venvstacks_layer.json").read_text())
    assert isinstance(data, dict)
    return data


def test_apps_run_from_build(example_stack: Path) -> None:
    build = example_stack / "_build"
    classify = build / "app-classify"
    out = subprocess.run(
        [str(classify / "bin/python"), "-m", "classify"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "iris accuracy" in out.stdout
    report = subprocess.run(
        [str(build / "app-cluster-report/bin/python"), "-m", "cluster_report"],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    assert "cluster-report: 3 clusters" in report.stdout


def test_packages_come_from_their_layers(example_stack: Path) -> None:
    build = example_stack / "_build"
    code = (
        "import numpy, sklearn, tabulate, json;"
        "print(json.dumps([numpy.__file__, sklearn.__file__, tabulate.__file__]))"
    )
    numpy_file, sklearn_file, tabulate_file = json.loads(
        run_python(build / "app-cluster-report/bin/python", code)
    )
    assert Path(numpy_file).is_relative_to(build / "cpython@3.11")
    assert Path(sklearn_file).is_relative_to(build / "framework-sklearn")
    assert Path(tabulate_file).is_relative_to(build / "app-cluster-report")
    # Packages provided from below are never installed twice.
    site = build / "app-cluster-report/lib/python3.11/site-packages"
    assert not (site / "numpy").exists()
    assert not (site / "sklearn").exists()


def test_sys_path_follows_c3_order(example_stack: Path) -> None:
    build = example_stack / "_build"
    paths = [Path(p) for p in json.loads(run_python(build / "app-classify/bin/python", SYS_PATH))]
    sites = [p for p in paths if p.name == "site-packages"]
    assert sites == [
        build / "app-classify/lib/python3.11/site-packages",
        build / "framework-sklearn/lib/python3.11/site-packages",
        build / "cpython@3.11/lib/python3.11/site-packages",
    ]


def test_isolation_between_layers(example_stack: Path) -> None:
    build = example_stack / "_build"
    # The framework cannot see an app's packages, and the runtime cannot see the framework's.
    probe = "import importlib.util as u, sys; print(u.find_spec(sys.argv[1]) is None)"
    assert run_python(build / "framework-sklearn/bin/python", probe, "tabulate").strip() == "True"
    assert run_python(build / "cpython@3.11/bin/python3.11", probe, "sklearn").strip() == "True"


def test_metadata_contract(example_stack: Path) -> None:
    build = example_stack / "_build"
    app = _meta(build / "app-classify")
    assert app["launch_module"] == "classify"
    assert app["postinstall_script"] == "postinstall.py"
    assert app["base_python"] == "../cpython@3.11/bin/python3.11"
    assert app["pylib_dirs"] == [
        "../framework-sklearn/lib/python3.11/site-packages",
        "../cpython@3.11/lib/python3.11/site-packages",
    ]
    assert (build / "app-classify" / str(app["app_python"])).exists()
    runtime = _meta(build / "cpython@3.11")
    assert str(runtime["py_version"]).startswith("3.11.")
    for layer in ("cpython@3.11", "framework-sklearn", "app-classify"):
        assert (build / layer / "postinstall.py").is_file()


def test_noop_rebuild_rebuilds_nothing(example_stack: Path) -> None:
    result = venvlayers("build", example_stack)
    assert "built" not in result.stdout.replace("up to date", "")
    assert result.stdout.count("up to date") == 4


def test_local_export_moves_and_runs(example_stack: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    venvlayers("local-export", example_stack, "--output-dir", export)
    assert (export / "__venvstacks__/venvstacks.json").is_file()
    # Console scripts of a framework work from the exported framework's bin/.
    tqdm = subprocess.run(
        [str(export / "framework-sklearn/bin/tqdm"), "--version"], capture_output=True, text=True
    )
    assert tqdm.returncode == 0, tqdm.stderr
    moved = tmp_path / "moved"
    shutil.move(export, moved)
    for layer in ("cpython@3.11", "framework-sklearn", "app-classify"):
        meta = _meta(moved / layer)
        base = (moved / layer / str(meta["base_python"])).resolve()
        subprocess.run([str(base), str(moved / layer / "postinstall.py")], check=True)
    out = subprocess.run(
        [str(moved / "app-classify/bin/python"), "-m", "classify"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "iris accuracy" in out.stdout
    assert str(export) not in (moved / "app-classify/pyvenv.cfg").read_text()


def test_include_builds_the_layers_beneath_only(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(
        EXAMPLE, stack, ignore=shutil.ignore_patterns("_build", "_artifacts", "_deploy")
    )
    built = venvlayers("build", stack, "--include", "classify").stdout
    assert "cpython@3.11: built" in built
    assert "framework-sklearn: built" in built
    assert "app-classify: built" in built
    assert not (stack / "_build/app-cluster-report").exists()
    # --clean rebuilds what is selected even though nothing changed.
    again = venvlayers("build", stack, "--include", "classify", "--clean").stdout
    assert again.count(": built") == 3


def test_failed_build_keeps_the_previous_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(
        EXAMPLE, stack, ignore=shutil.ignore_patterns("_build", "_artifacts", "_deploy")
    )
    venvlayers("build", stack)
    support = stack / "launch_modules/report_format.py"
    support.write_text(support.read_text().replace("clusters", "groups"))
    # uv cannot fetch the app's wheel: offline, with an empty cache.
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-uv-cache"))
    failed = venvlayers("build", stack, check=False)
    assert failed.returncode == 1
    assert "app-cluster-report" in failed.stderr
    assert "Traceback" not in failed.stderr
    build = stack / "_build"
    assert not [p for p in build.iterdir() if p.name.endswith(".partial")]
    old = subprocess.run(
        [str(build / "app-cluster-report/bin/python"), "-m", "cluster_report"],
        capture_output=True,
        text=True,
    )
    assert old.returncode == 0, old.stderr
    assert "3 clusters" in old.stdout
    monkeypatch.delenv("UV_OFFLINE")
    monkeypatch.delenv("UV_CACHE_DIR")
    assert "app-cluster-report: built" in venvlayers("build", stack).stdout
    new = subprocess.run(
        [str(build / "app-cluster-report/bin/python"), "-m", "cluster_report"],
        capture_output=True,
        text=True,
    )
    assert "3 groups" in new.stdout
