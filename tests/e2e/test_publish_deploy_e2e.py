"""Publish the built example stack, deploy it from its archives and run both apps."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from tests.e2e.helpers import venvlayers

pytestmark = pytest.mark.slow

ENV_FIELDS = {
    "layer_name", "install_target", "requirements_hash", "lock_version", "locked_at",
    "runtime_layer", "python_implementation", "bound_to_implementation", "required_layers",
    "app_launch_module", "app_launch_module_hash", "archive_build", "archive_name",
    "target_platform", "archive_size", "archive_hashes",
    "sbom",  # extension: the layer's SBOM beside the archives
}  # fmt: skip


@pytest.fixture(scope="module")
def published(example_stack: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts")
    venvlayers("publish", example_stack, "--output-dir", out)
    return out


def _index(out: Path) -> dict[str, list[dict[str, object]]]:
    data = json.loads((out / "__venvstacks__/venvstacks.json").read_text())
    layers: dict[str, list[dict[str, object]]] = data["layers"]
    return layers


def test_metadata_matches_the_format(published: Path) -> None:
    layers = _index(published)
    assert [e["install_target"] for e in layers["runtimes"]] == ["cpython@3.11"]
    assert [e["install_target"] for e in layers["frameworks"]] == ["framework-sklearn"]
    apps = {e["install_target"]: e for e in layers["applications"]}
    assert set(apps) == {"app-classify", "app-cluster-report"}
    for entries in layers.values():
        for entry in entries:
            assert set(entry) == ENV_FIELDS
            per_layer = published / f"__venvstacks__/env_metadata/{entry['install_target']}.json"
            assert json.loads(per_layer.read_text()) == entry
            archive = published / str(entry["archive_name"])
            assert archive.stat().st_size == entry["archive_size"]
    classify = apps["app-classify"]
    assert classify["required_layers"] == ["framework-sklearn"]
    assert classify["runtime_layer"] == "cpython@3.11"
    assert classify["app_launch_module"] == "classify"
    assert str(classify["python_implementation"]).startswith("cpython@3.11.")
    assert classify["bound_to_implementation"] is True


def test_archives_are_safe_and_complete(published: Path) -> None:
    archive = published / "framework-sklearn.tar.zst"
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        members = {m.name: m for m in tar}
    assert all(name.split("/")[0] == "framework-sklearn" for name in members)
    assert "framework-sklearn/postinstall.py" in members
    assert "framework-sklearn/share/venv/metadata/venvlayers_manifest.json" in members
    assert "framework-sklearn/pyvenv.cfg" not in members
    assert "framework-sklearn/bin/python" not in members
    assert not any("__pycache__" in name for name in members)
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in members.values())


def test_publish_twice_is_identical_and_reuses(
    example_stack: Path, published: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    venvlayers("publish", example_stack, "--output-dir", again)
    first = {
        e["install_target"]: e["archive_hashes"] for es in _index(published).values() for e in es
    }
    second = {e["install_target"]: e["archive_hashes"] for es in _index(again).values() for e in es}
    assert first == second
    # Unchanged layers keep their archives: nothing is rewritten.
    stamp = {p.name: p.stat().st_mtime_ns for p in again.glob("*.tar.zst")}
    result = venvlayers("publish", example_stack, "--output-dir", again)
    assert result.stdout.count("reused") == 4
    assert stamp == {p.name: p.stat().st_mtime_ns for p in again.glob("*.tar.zst")}


def test_dry_run_writes_nothing(example_stack: Path, tmp_path: Path) -> None:
    out = tmp_path / "dry"
    result = venvlayers("publish", example_stack, "--output-dir", out, "--dry-run")
    plan = json.loads(result.stdout)
    assert {e["archive_name"] for e in plan["layers"]} >= {"app-classify.tar.zst"}
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["tar.xz", "tar.gz", "zip"])
def test_other_formats_deploy_and_run(example_stack: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    venvlayers(
        "publish", example_stack, "--output-dir", out, "--format", fmt, "--include", "classify"
    )
    assert (out / f"app-classify.{fmt}").is_file()
    target = tmp_path / "target"
    venvlayers("deploy", out, "--target", target, "--app", "classify")
    run = venvlayers("run", target, "classify")
    assert "iris accuracy" in run.stdout


def test_deploy_run_redeploy_verify(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    first = venvlayers("deploy", published, "--target", target)
    assert first.stdout.count(": deployed") == 4
    assert "iris accuracy" in venvlayers("run", target, "classify").stdout
    assert "3 clusters" in venvlayers("run", target, "app-cluster-report").stdout
    again = venvlayers("deploy", published, "--target", target)
    assert ": deployed" not in again.stdout
    assert again.stdout.count("already deployed") == 4
    assert venvlayers("verify", target).returncode == 0
    # Drift is reported with exit status 1.
    (target / "app-classify/lib/python3.11/site-packages/classify.py").write_text("print('x')\n")
    drift = venvlayers("verify", target, check=False)
    assert drift.returncode == 1
    assert "classify.py" in drift.stdout


def test_deployed_stack_moves_with_its_folder(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    venvlayers("deploy", published, "--target", target, "--app", "classify")
    moved = tmp_path / "moved"
    shutil.move(target, moved)
    for layer in ("cpython@3.11", "framework-sklearn", "app-classify"):
        meta = json.loads((moved / layer / "share/venv/metadata/venvstacks_layer.json").read_text())
        base = (moved / layer / meta["base_python"]).resolve()
        subprocess.run([str(base), str(moved / layer / "postinstall.py")], check=True)
    assert "iris accuracy" in venvlayers("run", moved, "classify").stdout


def test_run_passes_arguments_and_exit_status(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    venvlayers("deploy", published, "--target", target, "--app", "classify")
    # Naming the runtime layer runs its python with the arguments after `--`.
    code = "import sys; print(sys.argv[1:]); sys.exit(3)"
    result = venvlayers("run", target, "cpython@3.11", "--", "-c", code, "a", "--b", check=False)
    assert result.returncode == 3
    assert result.stdout.strip() == "['a', '--b']"


def test_gc_keeps_layers_in_use(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    venvlayers("deploy", published, "--target", target)
    assert "nothing to remove" in venvlayers("gc", target).stdout
    removed = venvlayers("remove", target, "cluster-report").stdout
    assert "app-cluster-report: removed" in removed
    assert "framework-sklearn" not in removed
    assert "iris accuracy" in venvlayers("run", target, "classify").stdout
    venvlayers("remove", target, "classify")
    assert not (target / "framework-sklearn").exists()
    assert not (target / "cpython@3.11").exists()
