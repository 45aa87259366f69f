"""publish --bytecode on the built example stack: reproducible archives that ship
unchecked-hash bytecode, and a deploy that compiles nothing and verifies clean."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import zstandard

from tests.e2e.helpers import venvlayers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(example_stack: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bytecode") / "out"
    venvlayers("publish", example_stack, "--output-dir", out, "--bytecode")
    return out


def _layers(out: Path) -> list[dict[str, object]]:
    data = json.loads((out / "__venvstacks__/venvstacks.json").read_text())
    return [layer for layers in data["layers"].values() for layer in layers]


def _pyc_flags(archive: Path) -> dict[str, int]:
    """Each .pyc member's PEP 552 flags word, by member name."""
    flags = {}
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for info in tar:
            if info.name.endswith(".pyc"):
                member = tar.extractfile(info)
                assert member is not None
                flags[info.name] = int.from_bytes(member.read(16)[4:8], "little")
    return flags


def test_archives_ship_unchecked_hash_bytecode(published: Path) -> None:
    layers = _layers(published)
    assert {layer["bytecode"] for layer in layers} == {"unchecked-hash"}
    flags = _pyc_flags(published / "framework-sklearn.tar.zst")
    assert len(flags) > 100
    assert set(flags.values()) == {0b01}
    assert not any("/tests/" in name for name in flags)
    manifest = json.loads(
        (published / "__venvstacks__/manifests/framework-sklearn.json").read_text()
    )
    listed = {entry["path"] for entry in manifest["entries"]}
    assert {name.split("/", 1)[1] for name in flags} <= listed


def test_publish_twice_is_identical(example_stack: Path, published: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    venvlayers("publish", example_stack, "--output-dir", again, "--bytecode")
    hashes = {layer["install_target"]: layer["archive_hashes"] for layer in _layers(published)}
    assert hashes == {layer["install_target"]: layer["archive_hashes"] for layer in _layers(again)}
    # Publishing without --bytecode into the same folder writes new archives, with no flag.
    plain = venvlayers("publish", example_stack, "--output-dir", again)
    assert "reused" not in plain.stdout
    assert all("bytecode" not in layer for layer in _layers(again))


def test_deploy_compiles_nothing_and_the_apps_run(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    result = venvlayers("deploy", published, "--target", target)
    assert "byte-compiling" not in result.stdout + result.stderr
    records = [json.loads(p.read_text()) for p in (target / ".venvlayers/layers").glob("*.json")]
    assert {record["compile"] for record in records} == {"done"}
    assert all(record["compiled"] == {} for record in records)
    shipped = sorted(p.relative_to(target) for p in target.rglob("*.pyc"))
    assert shipped
    assert venvlayers("verify", target).returncode == 0
    assert "iris accuracy" in venvlayers("run", target, "classify").stdout
    assert "3 clusters" in venvlayers("run", target, "cluster-report").stdout
    # The first start found every module it imported compiled: it wrote no bytecode.
    assert sorted(p.relative_to(target) for p in target.rglob("*.pyc")) == shipped
    assert venvlayers("verify", target).returncode == 0


def test_bytecode_with_delta_is_refused(
    example_stack: Path, published: Path, tmp_path: Path
) -> None:
    result = venvlayers(
        "publish", example_stack, "--output-dir", tmp_path / "d", "--bytecode",
        "--delta-from", published, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--bytecode and --delta-from" in result.stdout + result.stderr
