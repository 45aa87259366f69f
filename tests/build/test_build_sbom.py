"""Each layer's CycloneDX SBOM: valid, complete, reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from venvlayers.build.sbom import SbomRequest, render_sbom, write_layer_sbom
from venvlayers.contract import LayerKind
from venvlayers.lock import LayerLock, LockedPackage, LockedWheel

SHA_A, SHA_B = "a" * 64, "b" * 64


def dist_info(site: Path, name: str, version: str, headers: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{headers}"
    )


def package(name: str, version: str, sha: str, provided_by: str | None = None) -> LockedPackage:
    wheel = LockedWheel(
        name=f"{name}-{version}-py3-none-any.whl",
        url=f"https://files.example/{name}-{version}-py3-none-any.whl",
        sha256=sha,
    )
    return LockedPackage(name, version, None, (wheel,), provided_by)


def lock_of(*packages: LockedPackage) -> LayerLock:
    return LayerLock(
        build_name="framework-sci",
        packages=packages,
        lock_version=3,
        locked_at="2025-06-01T00:00:00+00:00",
        requirements_hash="sha256:" + "c" * 64,
        lock_path=Path("pylock.toml"),
        meta_path=Path("pylock.meta.json"),
    )


@pytest.fixture
def request_(tmp_path: Path) -> SbomRequest:
    site = tmp_path / "layer/lib/python3.11/site-packages"
    dist_info(site, "Alpha_Lib", "1.0", "License-Expression: MIT OR Apache-2.0\n")
    dist_info(site, "beta", "2.0", "Classifier: License :: OSI Approved :: BSD License\n")
    lower = tmp_path / "cpython@3.11"
    (lower / "share/venv/metadata").mkdir(parents=True)
    (lower / "share/venv/metadata/sbom.cdx.json").write_text(
        json.dumps({"serialNumber": "urn:uuid:00000000-0000-0000-0000-000000000001"})
    )
    lock = lock_of(
        package("Alpha_Lib", "1.0", SHA_A),
        package("beta", "2.0", SHA_B),
        package("numpy", "2.0", "d" * 64, provided_by="cpython@3.11"),
    )
    return SbomRequest(
        install_target="framework-sci@3",
        kind=LayerKind.FRAMEWORK,
        lock=lock,
        installed=[(p, p.wheels[0]) for p in lock.own_packages],
        site_packages=site,
        python_version="3.11.7",
        lower_layers=[("cpython@3.11", LayerKind.RUNTIME, lower)],
    )


def test_the_sbom_validates_and_lists_what_the_layer_installs(request_: SbomRequest) -> None:
    text = render_sbom(request_)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["name"] == "framework-sci@3"
    assert bom["metadata"]["component"]["type"] == "framework"
    assert bom["metadata"]["timestamp"].startswith("2025-06-01T00:00:00")
    by_name = {c["name"]: c for c in bom["components"]}
    assert by_name["Alpha_Lib"]["purl"] == "pkg:pypi/alpha-lib@1.0"
    assert by_name["Alpha_Lib"]["hashes"] == [{"alg": "SHA-256", "content": SHA_A}]
    assert by_name["Alpha_Lib"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert by_name["beta"]["licenses"] == [{"license": {"name": "BSD License"}}]
    assert "numpy" not in by_name, "packages of lower layers are in their own SBOM"
    runtime = by_name["cpython@3.11"]
    assert runtime["externalReferences"][0]["type"] == "bom"
    assert runtime["externalReferences"][0]["url"].startswith(
        "urn:uuid:00000000-0000-0000-0000-000000000001/1#"
    )
    (root,) = [d for d in bom["dependencies"] if d["ref"] == "layer:framework-sci@3"]
    assert set(root["dependsOn"]) == {
        "pkg:pypi/alpha-lib@1.0", "pkg:pypi/beta@2.0", "layer:cpython@3.11",
    }  # fmt: skip


def test_the_same_lock_gives_the_same_bytes(request_: SbomRequest, tmp_path: Path) -> None:
    write_layer_sbom(tmp_path / "one", request_)
    write_layer_sbom(tmp_path / "two", request_)
    first = (tmp_path / "one/share/venv/metadata/sbom.cdx.json").read_bytes()
    assert first == (tmp_path / "two/share/venv/metadata/sbom.cdx.json").read_bytes()
    assert json.loads(first)["serialNumber"].startswith("urn:uuid:")


def test_a_runtime_layer_lists_its_interpreter(request_: SbomRequest) -> None:
    from dataclasses import replace

    runtime = replace(
        request_, install_target="cpython@3.11", kind=LayerKind.RUNTIME, runtime_source="local",
        lower_layers=(),
    )  # fmt: skip
    bom = json.loads(render_sbom(runtime))
    (cpython,) = [c for c in bom["components"] if c["name"] == "cpython"]
    assert cpython["version"] == "3.11.7"
    assert cpython["properties"] == [{"name": "venvlayers:runtime_source", "value": "local"}]
    assert bom["metadata"]["component"]["type"] == "platform"
