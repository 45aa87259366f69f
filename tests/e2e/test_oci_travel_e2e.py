"""Everything a published output carries travels through a registry: the signature (and
the metadata bytes it covers), SBOMs, layer manifests, env_metadata files and deltas."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_support import add_delta, fake_stack, snapshot, store_entries
from tests.e2e.helpers import venvlayers
from tests.e2e.oci_support import RegistryServer, registry  # noqa: F401  (a fixture)
from venvlayers.contract import (
    SBOM_DIR,
    STACK_METADATA,
    AttachedFile,
    read_stack_metadata,
    write_stack_metadata,
)
from venvlayers.contract.signature import SIGNATURE
from venvlayers.publish.sign import sign_output

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen"),
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import subprocess

    folder = tmp_path_factory.mktemp("keys")
    found = {}
    for name in ("release", "stranger"):
        key = folder / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        allowed = folder / f"{name}.allowed"
        allowed.write_text(f"{name}@ci {key.with_suffix('.pub').read_text()}")
        found[name], found[f"{name}.allowed"] = key, allowed
    return found


def json_of(*args: str | Path) -> dict[str, Any]:
    data = json.loads(venvlayers(*args, "--json").stdout)
    assert isinstance(data, dict)
    return data


def refused(*args: str | Path) -> str:
    result = venvlayers(*args, check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def raw_manifest(server: RegistryServer, ref: str) -> dict[str, Any]:
    import urllib.request

    repository, _, tag = ref.removeprefix(f"oci://{server.host}/").rpartition(":")
    request = urllib.request.Request(
        f"http://{server.host}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request) as reply:
        data: dict[str, Any] = json.loads(reply.read())
    return data


def with_sbom(output: Path, install_target: str) -> Path:
    """Give one layer of a fake output a published SBOM, bound by the metadata."""
    data = json.dumps({"bomFormat": "CycloneDX", "layer": install_target}).encode()
    name = f"{install_target}.cdx.json"
    (output / SBOM_DIR).mkdir(parents=True, exist_ok=True)
    (output / SBOM_DIR / name).write_bytes(data)
    _, layers = read_stack_metadata(output)
    sbom = AttachedFile(name, hashlib.sha256(data).hexdigest())
    write_stack_metadata(
        output, [la.with_sbom(sbom) if la.install_target == install_target else la for la in layers]
    )
    return output / SBOM_DIR / name


def test_a_signed_stack_deploys_with_require_signature(
    registry: RegistryServer,  # noqa: F811
    keys: dict[str, Path],
    tmp_path: Path,
) -> None:
    out = fake_stack(tmp_path / "stack")
    # Not as write_json renders it: a push that re-rendered the metadata would break this.
    metadata = out / STACK_METADATA
    metadata.write_text(json.dumps(json.loads(metadata.read_text()), indent=4) + "\n")
    sign_output(out, keys["release"])
    ref = registry.url("signed/stack:v1")
    pushed = json_of("push", out, ref)
    assert pushed["blobs"][SIGNATURE] == "uploaded"
    manifest = raw_manifest(registry, ref)
    # The config is the metadata file's bytes, exactly.
    assert (
        manifest["config"]["digest"]
        == "sha256:" + hashlib.sha256(metadata.read_bytes()).hexdigest()
    )
    (entry,) = [e for e in manifest["layers"] if e["mediaType"].endswith("+sshsig")]
    assert entry["mediaType"] == "application/vnd.venvlayers.signature.v1+sshsig"
    assert entry["digest"] == "sha256:" + hashlib.sha256((out / SIGNATURE).read_bytes()).hexdigest()

    target = tmp_path / "target"
    deployed = json_of("deploy", ref, "--target", target, "--no-compile",
                       "--require-signature", keys["release.allowed"])  # fmt: skip
    assert SIGNATURE in deployed["files"]
    assert (target / ".venvlayers/trust/venvstacks.json").read_bytes() == metadata.read_bytes()
    assert venvlayers("verify", target).returncode == 0
    # The target now requires the signature of every later deploy, from a registry too.
    again = json_of("deploy", ref, "--target", target, "--no-compile")
    assert again["fetched"] == []


def test_unsigned_or_differently_signed_stacks_under_the_same_tag_are_refused(
    registry: RegistryServer,  # noqa: F811
    keys: dict[str, Path],
    tmp_path: Path,
) -> None:
    v1 = fake_stack(tmp_path / "stack", version=1)
    sign_output(v1, keys["release"])
    ref = registry.url("tampered/stack:live")
    venvlayers("push", v1, ref)
    target = tmp_path / "target"
    venvlayers("deploy", ref, "--target", target, "--no-compile",
               "--require-signature", keys["release.allowed"])  # fmt: skip
    before = snapshot(target)

    v2 = fake_stack(tmp_path / "stack", version=2, changed_apps=["hello"])
    venvlayers("push", v2, ref)  # unsigned, same tag
    line = refused("deploy", ref, "--target", target, "--no-compile")
    assert f"{ref}: unsigned output" in line and "requires it" in line
    assert snapshot(target) == before

    sign_output(v2, keys["stranger"])
    venvlayers("push", v2, ref)
    line = refused("deploy", ref, "--target", target, "--no-compile")
    assert "signed by a key that" in line and "does not allow" in line
    assert snapshot(target) == before

    # v1's signature beside v2's metadata: the metadata changed after signing.
    shutil.copyfile(v1 / SIGNATURE, v2 / SIGNATURE)
    venvlayers("push", v2, ref)
    line = refused("deploy", ref, "--target", target, "--no-compile")
    assert "the signature does not match" in line
    assert snapshot(target) == before
    # A fresh target asked for a signature is refused the same way, and left absent.
    fresh = tmp_path / "fresh"
    line = refused("deploy", ref, "--target", fresh, "--require-signature", keys["release.allowed"])
    assert "the signature does not match" in line
    assert not fresh.exists()


def test_sboms_manifests_and_env_metadata_reach_the_deploy_as_from_a_folder(
    registry: RegistryServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from venvlayers import deploy as deploy_stage
    from venvlayers.oci import deploy_from_registry, parse_oci_ref

    v1 = fake_stack(tmp_path / "stack", version=1)
    v2 = fake_stack(tmp_path / "stack", version=2)
    add_delta(v1, v2, "framework-greet")
    with_sbom(v2, "app-hello")
    ref = registry.url("sidecars/stack:v2")
    venvlayers("push", v2, ref)
    types = {e["mediaType"] for e in raw_manifest(registry, ref)["layers"]}
    assert {
        "application/vnd.cyclonedx+json",
        "application/vnd.venvlayers.layer.manifest.v1+json",
        "application/vnd.venvlayers.layer.metadata.v1+json",
        "application/vnd.venvlayers.delta.v1.tar+zstd",
    } <= types

    seen: dict[str, bytes] = {}
    real_deploy = deploy_stage.deploy

    def looking(source: Path, target: Path, **options: Any) -> Any:
        meta = source / "__venvstacks__"
        seen.update({str(p.relative_to(source)): p.read_bytes() for p in meta.rglob("*.json")})
        return real_deploy(source, target, **options)

    monkeypatch.setattr(deploy_stage, "deploy", looking)
    target = tmp_path / "target"
    pulled = deploy_from_registry(parse_oci_ref(ref), target, compile_bytecode=False)
    published = {
        str(p.relative_to(v2)): p.read_bytes() for p in (v2 / "__venvstacks__").rglob("*.json")
    }
    # Every layer is new here: the deploy saw the very files a folder deploy sees.
    assert seen == published
    assert f"{SBOM_DIR}/app-hello.cdx.json" in pulled.files
    assert not (target / ".venvlayers/oci-cache/source").exists()


def test_a_layer_whose_base_is_held_comes_as_its_delta(
    registry: RegistryServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    v1 = fake_stack(tmp_path / "stack", version=1)
    v2 = fake_stack(tmp_path / "stack", version=2)
    delta = add_delta(v1, v2, "framework-greet")
    venvlayers("push", v1, registry.url("delta/stack:v1"))
    venvlayers("push", v2, registry.url("delta/stack:v2"))
    _, layers = read_stack_metadata(v2)
    framework = next(la for la in layers if la.install_target == "framework-greet@2")
    assert framework.archive is not None
    full_sha = framework.archive.archive_hashes["sha256"]
    delta_sha = framework.deltas[0].archive_sha256

    target = tmp_path / "target"
    venvlayers("deploy", registry.url("delta/stack:v1"), "--target", target, "--no-compile")
    mark = len(registry.log_lines())
    second = json_of("deploy", registry.url("delta/stack:v2"), "--target", target, "--no-compile")
    gets = registry.blob_gets(mark)
    assert f"sha256:{delta_sha}" in gets and f"sha256:{full_sha}" not in gets, gets
    assert second["deltas"] == ["framework-greet@2"]
    assert second["sources"]["framework-greet@2"] == "delta"
    saved = framework.archive.archive_size - delta.stat().st_size
    assert second["bytes_saved_by_deltas"] == saved > 0
    says = venvlayers("run", target, "hello").stdout
    assert "greetings v2" in says
    print(
        f"delta deploy: {second['bytes_fetched']} bytes in {second['requests']} requests;"
        f" the delta {delta.stat().st_size} bytes instead of {framework.archive.archive_size}"
    )


def test_a_delta_that_does_not_apply_falls_back_to_the_full_archive(
    registry: RegistryServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    v1 = fake_stack(tmp_path / "stack", version=1)
    v2 = fake_stack(tmp_path / "stack", version=2)
    add_delta(v1, v2, "framework-greet")
    venvlayers("push", v1, registry.url("fallback/stack:v1"))
    venvlayers("push", v2, registry.url("fallback/stack:v2"))
    target = tmp_path / "target"
    venvlayers("deploy", registry.url("fallback/stack:v1"), "--target", target, "--no-compile")
    # The base is held, but the store lost the files the delta does not carry.
    for entry in store_entries(target).values():
        entry.unlink()
    second = json_of("deploy", registry.url("fallback/stack:v2"), "--target", target,
                     "--no-compile")  # fmt: skip
    assert second["deltas"] == [] and second["bytes_saved_by_deltas"] == 0
    assert second["sources"]["framework-greet@2"] == "full"
    assert "greetings v2" in venvlayers("run", target, "hello").stdout
