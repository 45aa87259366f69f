"""Push, deploy from and build images against a real registry (and podman to run them)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import venvlayers
from tests.e2e.oci_support import (
    RegistryServer,
    htpasswd_file,
    make_base_rootfs,
    podman,
    registry,  # noqa: F401  (a fixture)
    start_registry,
    stop_registry,
)

pytestmark = [pytest.mark.slow]

SPEC = """
[[runtimes]]
name = "cpython@3.11"
python_implementation = "cpython@3.11"
requirements = []
platforms = ["linux_x86_64"]

[[frameworks]]
name = "shared"
runtime = "cpython@3.11"
requirements = []

[[applications]]
name = "hello"
launch_module = "hello.py"
frameworks = ["shared"]
requirements = []

[[applications]]
name = "greet"
launch_module = "greet.py"
frameworks = ["shared"]
requirements = []
"""


def publish(stack: Path) -> Path:
    venvlayers("lock", stack, "--if-needed")
    venvlayers("build", stack)
    venvlayers("publish", stack)
    return stack / "_artifacts"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("oci") / "stack"
    root.mkdir()
    (root / "venvstacks.toml").write_text(SPEC)
    (root / "hello.py").write_text("print('hello from the app')\n")
    (root / "greet.py").write_text("print('greetings from the other app')\n")
    publish(root)
    return root


@pytest.fixture(scope="module")
def pushed(stack: Path, registry: RegistryServer) -> str:  # noqa: F811
    ref = registry.url("demo/stack:v1")
    venvlayers("push", stack / "_artifacts", ref)
    return ref


def json_of(*args: str | Path) -> dict[str, object]:
    result = venvlayers(*args, "--json")
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def refused(*args: str | Path) -> str:
    """Run a command that must fail with one clear line; return that line."""
    result = venvlayers(*args, check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_push_is_readable_by_skopeo_and_skips_what_is_there(
    stack: Path,
    registry: RegistryServer,  # noqa: F811
    pushed: str,
) -> None:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false",
         f"docker://{registry.host}/demo/stack:v1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    manifest = json.loads(raw.stdout)
    assert manifest["artifactType"] == "application/vnd.venvlayers.stack.v1"
    assert manifest["config"]["mediaType"] == "application/vnd.venvlayers.stack.config.v1+json"
    metadata = json.loads((stack / "_artifacts/__venvstacks__/venvstacks.json").read_text())
    published = {
        "sha256:" + layer["archive_hashes"]["sha256"]
        for kind in metadata["layers"].values()
        for layer in kind
    }
    # Each archive is one blob, as it is: its digest is the sha256 in our metadata.
    archives = [e for e in manifest["layers"] if ".layer.v1." in e["mediaType"]]
    assert {entry["digest"] for entry in archives} == published
    # The other files of the output travel too, each as it is, with its own media type.
    out = stack / "_artifacts"
    by_type: dict[str, set[str]] = {}
    for entry in manifest["layers"]:
        by_type.setdefault(entry["mediaType"], set()).add(entry["digest"])

    def digests(pattern: str) -> set[str]:
        return {"sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob(pattern)}

    assert by_type["application/vnd.cyclonedx+json"] == digests("__venvstacks__/sbom/*.cdx.json")
    assert by_type["application/vnd.venvlayers.layer.manifest.v1+json"] == digests(
        "__venvstacks__/manifests/*.json"
    )
    assert by_type["application/vnd.venvlayers.layer.metadata.v1+json"] == digests(
        "__venvstacks__/env_metadata/*.json"
    )
    assert len(by_type["application/vnd.cyclonedx+json"]) == 4
    assert manifest["config"]["digest"] == digests("__venvstacks__/venvstacks.json").pop()
    again = json_of("push", stack / "_artifacts", pushed)
    assert set(again["blobs"].values()) == {"present"}  # type: ignore[attr-defined]


def test_deploy_from_registry_then_only_the_changed_app_is_fetched(
    stack: Path,
    registry: RegistryServer,  # noqa: F811
    pushed: str,
    tmp_path: Path,
) -> None:
    target = tmp_path / "target"
    first = json_of("deploy", pushed, "--target", target)
    assert len(first["fetched"]) == 4  # type: ignore[arg-type]
    # Each new layer's SBOM, manifest and env_metadata reached the deploy, as from a folder.
    assert sorted(first["files"]) == sorted(  # type: ignore[call-overload]
        f"__venvstacks__/{folder}/{name}{suffix}"
        for name in ("cpython@3.11", "framework-shared", "app-hello", "app-greet")
        for folder, suffix in (("sbom", ".cdx.json"), ("manifests", ".json"),
                               ("env_metadata", ".json"))
    )  # fmt: skip
    stack_sbom = json.loads(venvlayers("sbom", target, "hello").stdout)
    assert stack_sbom["bomFormat"] == "CycloneDX" and stack_sbom["components"]
    assert venvlayers("run", target, "hello").stdout == "hello from the app\n"
    assert venvlayers("run", target, "greet").stdout == "greetings from the other app\n"
    assert not list((target / ".venvlayers/oci-cache").rglob("*.partial"))

    changed = tmp_path / "changed"
    shutil.copytree(stack, changed, symlinks=True)
    (changed / "hello.py").write_text("print('hello, second version')\n")
    publish(changed)
    ref_v2 = registry.url("demo/stack:v2")
    venvlayers("push", changed / "_artifacts", ref_v2)
    mark = len(registry.log_lines())
    second = json_of("deploy", ref_v2, "--target", target)
    assert second["fetched"] == ["app-hello"]
    assert venvlayers("run", target, "hello").stdout == "hello, second version\n"
    metadata = json.loads((changed / "_artifacts/__venvstacks__/venvstacks.json").read_text())
    app_sha = next(
        la["archive_hashes"]["sha256"]
        for la in metadata["layers"]["applications"]
        if la["install_target"] == "app-hello"
    )
    gets = registry.blob_gets(mark)
    # The registry saw five blob downloads: the stack metadata, the changed app's archive,
    # and its SBOM, manifest and env_metadata file; no other layer's.
    assert second["files"] == [
        "__venvstacks__/sbom/app-hello.cdx.json",
        "__venvstacks__/manifests/app-hello.json",
        "__venvstacks__/env_metadata/app-hello.json",
    ]
    assert len(gets) == 5 and f"sha256:{app_sha}" in gets, gets
    print(
        f"second deploy: {second['bytes_fetched']} bytes in {second['requests']} requests"
        f" (first: {first['bytes_fetched']} bytes in {first['requests']} requests)"
    )
    assert int(second["bytes_fetched"]) * 100 < int(first["bytes_fetched"])  # type: ignore[call-overload]


def assert_untouched(target: Path) -> None:
    assert not target.exists(), sorted(str(p) for p in target.rglob("*"))


def test_unknown_host_wrong_tag_and_registry_down(
    registry: RegistryServer,  # noqa: F811
    pushed: str,
    tmp_path: Path,
) -> None:
    target = tmp_path / "target"
    line = refused("deploy", "oci://no-such-host.invalid/demo/stack:v1", "--target", target)
    assert "no-such-host.invalid: unknown host" in line
    line = refused("deploy", registry.url("demo/stack:nope"), "--target", target)
    assert "demo/stack:nope" in line and "not found" in line
    down = start_registry(tmp_path / "down")
    stop_registry(down)
    line = refused("deploy", down.url("demo/stack:v1"), "--target", target)
    assert f"{down.host}: connection refused" in line
    assert_untouched(target)


def test_a_corrupted_blob_is_refused_and_the_target_unchanged(
    stack: Path,
    registry: RegistryServer,  # noqa: F811
    pushed: str,
    tmp_path: Path,
) -> None:
    metadata = json.loads((stack / "_artifacts/__venvstacks__/venvstacks.json").read_text())
    sha = metadata["layers"]["frameworks"][0]["archive_hashes"]["sha256"]
    blob = registry.blob_file(f"sha256:{sha}")
    good = blob.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # same size: the registry serves it as it is
    blob.write_bytes(bytes(bad))
    target = tmp_path / "target"
    try:
        line = refused("deploy", pushed, "--target", target)
    finally:
        blob.write_bytes(good)
    assert f"sha256:{sha}" in line and "does not match its digest" in line
    assert_untouched(target)


def test_a_registry_that_asks_for_credentials(
    stack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_registry(
        tmp_path / "auth", htpasswd=htpasswd_file(tmp_path / "htpasswd", "alice", "s3cret")
    )
    try:
        config = tmp_path / "docker"
        config.mkdir()
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        line = refused("push", stack / "_artifacts", server.url("demo/stack:v1"))
        assert f"{server.host}: the registry asks for credentials" in line
        import base64

        token = base64.b64encode(b"alice:s3cret").decode()
        (config / "config.json").write_text(json.dumps({"auths": {server.host: {"auth": token}}}))
        venvlayers("push", stack / "_artifacts", server.url("demo/stack:v1"))
        target = tmp_path / "target"
        venvlayers("deploy", server.url("demo/stack:v1"), "--target", target, "--app", "greet")
        assert venvlayers("run", target, "greet").stdout == "greetings from the other app\n"
    finally:
        stop_registry(server)


def test_app_images_share_the_framework_layer_and_run(
    stack: Path,
    registry: RegistryServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    deployed = tmp_path / "deployed"
    venvlayers("deploy", stack / "_artifacts", "--target", deployed, "--no-compile")
    rootfs = tmp_path / "rootfs"
    make_base_rootfs(rootfs, deployed)
    tarball = tmp_path / "base.tar"
    subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
    pod = podman(tmp_path / "podman")
    pod("import", str(tarball), "localhost/venvlayers-test-base:1")
    pod("push", "--tls-verify=false", "--format", "oci", "localhost/venvlayers-test-base:1",
        f"docker://{registry.host}/base:1")  # fmt: skip
    base = registry.url("base:1")

    images = {}
    for app in ("hello", "greet"):
        images[app] = json_of(
            "image", stack / "_artifacts", app, "--base", base,
            "--push", registry.url(f"apps/{app}:1"),
        )  # fmt: skip
    hello_layers, greet_layers = images["hello"]["layers"], images["greet"]["layers"]
    assert hello_layers["framework-shared"] == greet_layers["framework-shared"]  # type: ignore[index]
    assert hello_layers["cpython@3.11"] == greet_layers["cpython@3.11"]  # type: ignore[index]
    assert hello_layers["app-hello"] != greet_layers["app-greet"]  # type: ignore[index]

    # Reproducible: the same inputs give the same digests, in a layout as in a registry.
    layout = tmp_path / "layout"
    again = json_of("image", stack / "_artifacts", "hello", "--base", base, "--output", layout)
    assert again["digest"] == images["hello"]["digest"]
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == images["hello"]["digest"]

    for app, expected in (
        ("hello", "hello from the app"),
        ("greet", "greetings from the other app"),
    ):
        image = f"{registry.host}/apps/{app}:1"
        pod("pull", "--tls-verify=false", image)
        ran = pod("run", "--rm", "--network", "none", image)
        assert ran.stdout.strip() == expected, ran.stderr
    inspect = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/apps/hello:1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    labels = json.loads(inspect.stdout)["Labels"]
    assert labels["org.venvlayers.image.app"] == "app-hello"
    assert sys.platform == "linux" and os.name == "posix"
