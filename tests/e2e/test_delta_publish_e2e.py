"""`publish --delta-from OLD`: per changed layer, an archive of only what OLD's version lacks."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import textwrap
from pathlib import Path

import pytest
import zstandard

from tests.e2e.helpers import venvlayers
from tests.lock.test_lock_local import make_wheel

pytestmark = [pytest.mark.slow]

SPEC = """
[[runtimes]]
name = "cpython@3.11"
python_implementation = "cpython@3.11"
requirements = []
platforms = ["linux_x86_64"]

[[frameworks]]
name = "fw"
runtime = "cpython@3.11"
requirements = {requirements}

[[applications]]
name = "app"
launch_module = "app.py"
frameworks = ["fw"]
requirements = []
"""


def members(archive: Path) -> dict[str, bytes]:
    data = zstandard.ZstdDecompressor().stream_reader(archive.open("rb")).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def entry(out: Path, layer_name: str) -> dict[str, object]:
    index = json.loads((out / "__venvstacks__/venvstacks.json").read_text())
    return next(
        e for entries in index["layers"].values() for e in entries if e["layer_name"] == layer_name
    )


def test_a_delta_holds_only_what_the_earlier_version_lacks(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "alpha", "1.0")
    make_wheel(wheels, "beta", "2.0")
    stack = tmp_path / "stack"
    stack.mkdir()
    spec = stack / "venvstacks.toml"
    spec.write_text(textwrap.dedent(SPEC.format(requirements='["alpha"]')))
    (stack / "app.py").write_text("import alpha\nprint(alpha.VERSION)\n")
    lock = ["lock", stack, "--local-wheels", wheels, "--no-index"]
    venvlayers(*lock)
    venvlayers("build", stack)
    old = tmp_path / "v1"
    venvlayers("publish", stack, "-o", old)

    spec.write_text(textwrap.dedent(SPEC.format(requirements='["alpha", "beta"]')))
    venvlayers(*lock)
    venvlayers("build", stack)
    new = tmp_path / "v2"
    venvlayers("publish", stack, "-o", new, "--delta-from", old)

    framework = entry(new, "framework-fw")
    (delta,) = framework["deltas"]  # type: ignore[misc]
    assert delta["base_install_target"] == "framework-fw"
    assert (
        delta["base_archive_hashes"]["sha256"]
        == (
            entry(old, "framework-fw")["archive_hashes"]["sha256"]  # type: ignore[index]
        )
    )
    archive = new / delta["archive_name"]
    assert archive.stat().st_size == delta["archive_size"]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == delta["archive_hashes"]["sha256"]
    full_size = framework["archive_size"]
    assert isinstance(full_size, int) and delta["archive_size"] < full_size

    files = members(archive)
    manifest = files.pop("framework-fw/share/venv/metadata/venvlayers_manifest.json")
    descriptor = json.loads(files.pop("framework-fw/share/venv/metadata/venvlayers_delta.json"))
    assert hashlib.sha256(manifest).hexdigest() == delta["manifest_hashes"]["sha256"]
    assert manifest == (new / "__venvstacks__/manifests/framework-fw.json").read_bytes()
    assert descriptor["base_archive_hashes"] == delta["base_archive_hashes"]
    assert descriptor["removed"] == []
    # beta's files, and what changed because beta came (the SBOM): nothing of alpha.
    assert any("/beta/" in name for name in files)
    assert not any("/alpha/" in name for name in files)
    # Layers that did not change get no delta.
    assert "deltas" not in entry(new, "cpython@3.11")

    # OLD may be the very folder published into.
    spec.write_text(textwrap.dedent(SPEC.format(requirements='["beta"]')))
    venvlayers(*lock)
    venvlayers("build", stack)
    venvlayers("publish", stack, "-o", new, "--delta-from", new)
    (again,) = entry(new, "framework-fw")["deltas"]  # type: ignore[misc]
    assert again["base_archive_hashes"] == framework["archive_hashes"]
    descriptor = json.loads(
        members(new / again["archive_name"])[
            "framework-fw/share/venv/metadata/venvlayers_delta.json"
        ]
    )
    assert any(
        path.startswith("lib/python3.11/site-packages/alpha/") for path in descriptor["removed"]
    )
