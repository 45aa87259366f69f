"""postinstall.py run as a target runs it: a script in a layer folder, any Python 3.9+."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from venvlayers import layout
from venvlayers._injected import postinstall

SCRIPT = Path(postinstall.__file__)
SITE = "lib/python3.11/site-packages"
NO_COMPILE = {**os.environ, postinstall.NO_COMPILE_ENV: "1"}


def _pyenv_python(feature: str) -> Path | None:
    """A pyenv CPython of version ``feature`` (shims only work for the active version)."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
    found = sorted(Path(root, "versions").glob(f"{feature}.*/bin/python{feature}"))
    return found[-1] if found else None


def _layer(deployment: Path, name: str, meta: Mapping[str, Any]) -> Path:
    layer = deployment / name
    (layer / SITE).mkdir(parents=True)
    (layer / layout.LAYER_METADATA).parent.mkdir(parents=True)
    (layer / layout.LAYER_METADATA).write_text(json.dumps(meta), encoding="utf-8")
    shutil.copy2(SCRIPT, layer / layout.POSTINSTALL_SCRIPT)
    return layer


def _runtime(deployment: Path) -> Path:
    """A runtime layer whose interpreter only needs to exist: postinstall never runs it."""
    meta = {"python": "bin/python3.11", "py_version": "3.11.7", "base_python": "bin/python3.11",
            "site_dir": SITE}  # fmt: skip
    runtime = _layer(deployment, "cpython@3.11", meta)
    (runtime / "bin").mkdir()
    (runtime / "bin/python3.11").write_text("not run\n")
    return runtime


def _app_meta(**changes: Any) -> dict[str, Any]:
    meta = {
        "python": "bin/python",
        "py_version": "3.11.7",
        "base_python": "../cpython@3.11/bin/python3.11",
        "site_dir": SITE,
        "pylib_dirs": ["../framework-x@2/" + SITE, "../cpython@3.11/" + SITE],
        "dynlib_dirs": ["../framework-x@2/share/venv/dynlib"],
        "launch_module": "demo",
        "app_python": "bin/python-dynlib",
        "postinstall_script": "postinstall.py",
    }
    meta.update(changes)
    return meta


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    deployment = tmp_path / "deploy"
    _runtime(deployment)
    (deployment / "framework-x@2" / SITE).mkdir(parents=True)
    return deployment


def _postinstall(
    layer: Path, python: Path | str = sys.executable, env: Mapping[str, str] = NO_COMPILE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(layer / layout.POSTINSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=layer.parent.parent,
    )


def test_constants_match_the_layout() -> None:
    assert postinstall.METADATA_PATH == layout.LAYER_METADATA


@pytest.mark.parametrize("feature", ["3.9", "3.10", "current"])
def test_prepares_a_layered_env_on_any_python(deployment: Path, feature: str) -> None:
    python = sys.executable if feature == "current" else _pyenv_python(feature)
    if python is None:
        pytest.skip(f"no Python {feature} here")
    app = _layer(deployment, "app-demo@1", _app_meta())
    result = _postinstall(app, python)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (app / "pyvenv.cfg").read_text() == (
        f"home = {deployment / 'cpython@3.11/bin'}\n"
        "include-system-site-packages = false\n"
        "version = 3.11.7\n"
    )
    assert os.readlink(app / "bin/python") == "../../cpython@3.11/bin/python3.11"
    assert os.readlink(app / "bin/python3") == "python"
    assert os.readlink(app / "bin/python3.11") == "python"
    assert (app / SITE / "_venvlayers_path.pth").read_text() == "import _venvlayers_path\n"
    assert (app / SITE / "_venvlayers_path.py").read_text() == postinstall.render_link_module(
        SITE, _app_meta()["pylib_dirs"]
    )
    # Readable by every user of the deployment (temporary files start out as 0600).
    for written in ("pyvenv.cfg", f"{SITE}/_venvlayers_path.py", f"{SITE}/_venvlayers_path.pth"):
        assert (app / written).stat().st_mode & 0o777 == 0o644
    launcher = (app / "bin/python-dynlib").read_text()
    assert '"$layers_dir"/framework-x@2/share/venv/dynlib' in launcher
    assert os.access(app / "bin/python-dynlib", os.X_OK)


def test_keeps_other_pyvenv_settings_and_is_idempotent(deployment: Path) -> None:
    app = _layer(deployment, "app-demo", _app_meta())
    (app / "pyvenv.cfg").write_text("home = /build/bin\nuv = 0.13.8\nversion_info = 3.11.1\n")
    assert _postinstall(app).returncode == 0
    cfg = (app / "pyvenv.cfg").read_text()
    assert "uv = 0.13.8\n" in cfg
    assert "version_info = 3.11.7\n" in cfg
    assert f"home = {deployment / 'cpython@3.11/bin'}\n" in cfg
    before = {p: p.lstat().st_mtime_ns for p in app.rglob("*")}
    assert _postinstall(app).returncode == 0
    assert {p: p.lstat().st_mtime_ns for p in app.rglob("*")} == before


def test_replaces_files_instead_of_editing_them(deployment: Path, tmp_path: Path) -> None:
    """A layer hardlinked from the build folder (local-export) must not change the build."""
    build = tmp_path / "build-copy"
    built = _layer(build, "app-demo", _app_meta())
    (built / SITE / "_venvlayers_path.py").write_text("# build-time links\n")
    shutil.copytree(built, deployment / "app-demo", copy_function=os.link)
    assert _postinstall(deployment / "app-demo").returncode == 0
    assert (built / SITE / "_venvlayers_path.py").read_text() == "# build-time links\n"


def test_app_without_launcher_gets_none(deployment: Path) -> None:
    app = _layer(deployment, "app-plain", _app_meta(app_python="bin/python", dynlib_dirs=[]))
    assert _postinstall(app).returncode == 0
    assert not (app / "bin/python-dynlib").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_python", "../../../etc/python"),
        ("base_python", "/usr/bin/python3"),
        ("pylib_dirs", ["../../elsewhere/site-packages"]),
        ("dynlib_dirs", [".."]),
        ("app_python", "../../bin/sh"),
    ],
)
def test_refuses_paths_leaving_the_deployment(deployment: Path, field: str, value: object) -> None:
    app = _layer(deployment, "app-demo", _app_meta(**{field: value}))
    result = _postinstall(app)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("postinstall.py: app-demo: refusing field")
    assert repr(field) in result.stderr
    assert not (app / "pyvenv.cfg").exists()


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (_app_meta(base_python="../cpython@3.12/bin/python3.12"), "deploy the runtime layer"),
        (_app_meta(pylib_dirs=["../framework-y/" + SITE]), "deploy the layers beneath"),
        (_app_meta(site_dir=None), "field 'site_dir' is missing"),
        (_app_meta(pylib_dirs="../x"), "'pylib_dirs' must be a list of strings"),
    ],
)
def test_fails_with_one_line(deployment: Path, meta: dict[str, Any], message: str) -> None:
    app = _layer(deployment, "app-demo", meta)
    result = _postinstall(app)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert message in result.stderr


def test_missing_metadata_fails(deployment: Path) -> None:
    app = _layer(deployment, "app-demo", _app_meta())
    (app / layout.LAYER_METADATA).unlink()
    result = _postinstall(app)
    assert result.returncode == 1
    assert "cannot read share/venv/metadata/venvstacks_layer.json" in result.stderr


@pytest.mark.parametrize("feature", ["3.9", "current"])
def test_byte_compiles_and_tolerates_broken_files(deployment: Path, feature: str) -> None:
    python = sys.executable if feature == "current" else _pyenv_python(feature)
    if python is None:
        pytest.skip(f"no Python {feature} here")
    runtime = deployment / "cpython@3.11"
    (runtime / SITE / "good.py").write_text("VALUE = 1\n")
    (runtime / SITE / "pkg/tests").mkdir(parents=True)
    (runtime / SITE / "pkg/tests/broken.py").write_text("def (:\n")
    env = {k: v for k, v in os.environ.items() if k != postinstall.NO_COMPILE_ENV}
    result = _postinstall(runtime, python, env=env)
    assert result.returncode == 0, result.stderr
    assert list((runtime / SITE / "__pycache__").glob("good.*.pyc"))
    # A runtime is not a venv: nothing to link.
    assert not (runtime / "pyvenv.cfg").exists()
    assert not (runtime / SITE / "_venvlayers_path.pth").exists()


def test_compiling_can_be_skipped(deployment: Path) -> None:
    runtime = deployment / "cpython@3.11"
    (runtime / SITE / "good.py").write_text("VALUE = 1\n")
    assert _postinstall(runtime).returncode == 0
    assert not (runtime / SITE / "__pycache__").exists()
