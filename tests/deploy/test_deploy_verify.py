"""verify checks every path of a layer against what deploy recorded outside the layer.

Each case is a change that alters what an app does, and that an in-layer manifest,
caches left out and postinstall outputs skipped, did not see.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.deploy.deploy_support import RUNTIME, SITE, fake_stack, run_layer_python
from tests.deploy.deploy_support import quick_deploy as deploy
from venvlayers import layout
from venvlayers.deploy import LayerDrift, verify
from venvlayers.deploy.files import FILES_DIR, MARKER

FW1 = "framework-greet@1"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_stack(tmp_path_factory.mktemp("published"), version=1)


@pytest.fixture(scope="module")
def compiled_once(published: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment made with byte-compiling, copied by each test that needs one."""
    target = tmp_path_factory.mktemp("compiled") / "deploy"
    deploy(published, target, compile_bytecode=True)
    return target


@pytest.fixture
def target(published: Path, tmp_path: Path) -> Path:
    target = tmp_path / "deploy"
    deploy(published, target)
    assert verify(target).ok, verify(target).render()
    return target


def drift_of(target: Path, layer: str) -> LayerDrift:
    report = verify(target)
    assert not report.ok
    return next(found for found in report.layers if found.install_target == layer)


def test_an_app_python_replaced_by_a_script_is_reported(target: Path) -> None:
    python = target / "app-hello/bin/python"
    python.unlink()
    python.write_text("#!/bin/sh\necho owned\n")
    python.chmod(0o755)
    assert run_layer_python(target, "hello").stdout == "owned\n"
    assert drift_of(target, "app-hello").changed == ("bin/python",)


def test_an_added_sitecustomize_pyc_is_reported(target: Path) -> None:
    (target / FW1 / SITE / "sitecustomize.pyc").write_bytes(b"\x00" * 16)
    assert drift_of(target, FW1).unexpected == (f"{SITE}/sitecustomize.pyc",)


def test_an_edited_pyc_is_reported(compiled_once: Path, tmp_path: Path) -> None:
    target = Path(shutil.copytree(compiled_once, tmp_path / "deploy", symlinks=True))
    assert verify(target).ok, verify(target).render()
    caches = sorted((target / FW1 / SITE / "__pycache__").glob("greet.*.pyc"))
    assert caches, "compiling wrote the framework's bytecode"
    data = bytearray(caches[0].read_bytes())
    data[-1] ^= 0xFF
    caches[0].write_bytes(bytes(data))
    relative = caches[0].relative_to(target / FW1).as_posix()
    assert drift_of(target, FW1).changed == (relative,)


def test_an_edited_pyvenv_cfg_is_reported(target: Path) -> None:
    cfg = target / "app-other/pyvenv.cfg"
    cfg.write_text(cfg.read_text() + "include-system-site-packages = true\n")
    assert drift_of(target, "app-other").changed == ("pyvenv.cfg",)


@pytest.mark.parametrize("mode", [0o4755, 0o666, 0o000], ids=["setuid", "o+w", "none"])
def test_a_changed_mode_is_reported(target: Path, mode: int) -> None:
    path = target / "app-hello" / SITE / "hello.py"
    path.chmod(mode)
    assert drift_of(target, "app-hello").changed == (f"{SITE}/hello.py",)


def test_a_world_writable_folder_is_reported(target: Path) -> None:
    (target / FW1 / SITE).chmod(0o777)
    assert drift_of(target, FW1).changed == (SITE,)


def test_a_file_edited_with_its_in_layer_manifest_entry_is_reported(target: Path) -> None:
    layer = target / "app-hello"
    module = layer / SITE / "hello.py"
    module.write_text("print('owned')\n")
    manifest_path = layer / layout.LAYER_MANIFEST
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["entries"]:
        if entry["path"] == f"{SITE}/hello.py":
            entry["size"] = module.stat().st_size
            entry["sha256"] = hashlib.sha256(module.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    assert drift_of(target, "app-hello").changed == (f"{SITE}/hello.py", layout.LAYER_MANIFEST)


def test_added_and_removed_folders_are_reported(target: Path) -> None:
    (target / RUNTIME / "lib/new-empty").mkdir()
    assert drift_of(target, RUNTIME).unexpected == ("lib/new-empty",)
    (target / RUNTIME / "lib/new-empty").rmdir()
    bin_dir = target / "app-hello/bin"
    gone = sorted(f"bin/{p.name}" for p in bin_dir.iterdir())
    shutil.rmtree(bin_dir)
    assert drift_of(target, "app-hello").missing == ("bin", *gone)


def test_the_record_lives_outside_the_layers(target: Path) -> None:
    records = sorted(p.name for p in (target / FILES_DIR).iterdir())
    assert len(records) == 4
    for name in ("app-hello", "app-other", FW1, RUNTIME):
        assert (target / name / MARKER).is_file()
    # Emptying the manifest inside a layer changes nothing verify relies on, except that
    # the manifest file itself differs now.
    (target / "app-hello" / layout.LAYER_MANIFEST).write_text("{}")
    assert drift_of(target, "app-hello").changed == (layout.LAYER_MANIFEST,)
