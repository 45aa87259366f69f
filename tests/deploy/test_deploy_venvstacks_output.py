"""What venvstacks 0.8 publishes deploys as it is (the fast twin of
tests/e2e/test_venvstacks_compat.py, which runs venvstacks itself).

Its output differs from venvlayers' own: ``tar.xz`` archives with no file manifest inside,
runtime entries without ``required_layers``, ``app_support_modules`` and other fields on
apps, and in each venv a ``bin/python_`` link to the runtime's python, beside the layer.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.deploy.deploy_support import (
    FEATURE,
    RUNTIME,
    SITE,
    archive_of,
    fake_stack,
    replace_archive,
    rewrite_index,
    run_layer_python,
    tar_entry,
)
from tests.deploy.deploy_support import quick_deploy as deploy
from venvlayers import layout
from venvlayers.deploy import gc, remove_apps, verify
from venvlayers.errors import DeployError

FW1 = "framework-greet@1"


def _xz_entries(out: Path, install_target: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive_of(out, install_target), "r:xz") as tar:
        return [
            (info, tar.extractfile(info).read() if info.isreg() else b"")  # type: ignore[union-attr]
            for info in tar
        ]


@pytest.fixture(scope="module")
def venvstacks_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = fake_stack(tmp_path_factory.mktemp("venvstacks"), fmt=".tar.xz")
    for install_target in (RUNTIME, FW1, "app-hello", "app-other"):
        entries = [
            entry
            for entry in _xz_entries(out, install_target)
            if not entry[0].name.endswith(layout.LAYER_MANIFEST)
        ]
        if install_target != RUNTIME:
            link = f"../../{RUNTIME}/bin/python{FEATURE}"
            entries.append(tar_entry(f"{install_target}/bin/python_", tarfile.SYMTYPE, link=link))
        replace_archive(out, install_target, entries)
    index = json.loads((out / "__venvstacks__/venvstacks.json").read_text())
    for entry in index["layers"]["runtimes"]:
        del entry["required_layers"]
    for entry in index["layers"]["applications"]:
        entry["app_support_modules"] = [{"name": "helper", "hash": "sha256:" + "2" * 64}]
        entry["some_future_field"] = {"kept": True}
    rewrite_index(out, index)
    return out


def test_venvstacks_output_deploys_runs_verifies_and_is_collected(
    venvstacks_output: Path, tmp_path: Path
) -> None:
    names = [info.name for info, _ in _xz_entries(venvstacks_output, "app-hello")]
    assert f"app-hello/{layout.LAYER_MANIFEST}" not in names
    target = tmp_path / "deploy"
    result = deploy(venvstacks_output, target)
    assert result.deployed == (RUNTIME, FW1, "app-hello", "app-other")
    for app in ("hello", "other"):
        assert run_layer_python(target, app).stdout.startswith(f"{app} v1 says greetings v1")
    assert verify(target).ok, verify(target).render()
    # No manifest came in the archives: the one deploy made while unpacking sees everything.
    (target / FW1 / SITE / "greet.py").write_text("def greeting():\n    return 'owned'\n")
    (target / "app-hello/lower-paths.txt").unlink()
    (target / RUNTIME / SITE / "added.py").write_text("")
    drift = {layer.install_target: layer for layer in verify(target).layers}
    assert drift[FW1].changed == (f"{SITE}/greet.py",)
    assert drift["app-hello"].missing == ("lower-paths.txt",)
    assert drift[RUNTIME].unexpected == (f"{SITE}/added.py",)
    assert remove_apps(target, ["hello"]) == ("app-hello",)
    assert remove_apps(target, ["other"]) == ("app-other",)
    assert gc(target) == (RUNTIME, FW1)


def test_a_link_into_a_layer_the_app_is_not_built_on_is_refused(
    venvstacks_output: Path, tmp_path: Path
) -> None:
    source = Path(shutil.copytree(venvstacks_output, tmp_path / "out"))
    entries = _xz_entries(source, "app-other")
    entries.append(tar_entry("app-other/peek", tarfile.SYMTYPE, link="../app-hello"))
    replace_archive(source, "app-other", entries)
    with pytest.raises(DeployError, match="link leaving its layer"):
        deploy(source, tmp_path / "deploy")
