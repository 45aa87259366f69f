"""A stack locked from a folder of wheels (--local-wheels --no-index) builds and runs."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest

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
requirements = ["alpha"]

[[applications]]
name = "app"
launch_module = "app.py"
frameworks = ["fw"]
requirements = ["beta"]
"""


def test_local_wheels_lock_build_publish_deploy_and_run(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "alpha", "1.0")
    make_wheel(wheels, "beta", "2.0", requires=["alpha"])
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "venvstacks.toml").write_text(textwrap.dedent(SPEC))
    (stack / "app.py").write_text("import alpha, beta\nprint(alpha.VERSION, beta.VERSION)\n")
    venvlayers("lock", stack, "--local-wheels", wheels, "--no-index")
    venvlayers("build", stack, "--publish")
    target = tmp_path / "target"
    venvlayers("deploy", stack / "_artifacts", "--target", target)
    assert venvlayers("run", target, "app").stdout == "1.0 2.0\n"
    sbom = json.loads((target / "framework-fw/share/venv/metadata/sbom.cdx.json").read_text())
    assert [c["purl"] for c in sbom["components"] if "purl" in c] == ["pkg:pypi/alpha@1.0"]
    # Beside the archives too, bound to the stack metadata by its sha256.
    out = stack / "_artifacts/__venvstacks__"
    index = json.loads((out / "venvstacks.json").read_text())
    for entry in (e for entries in index["layers"].values() for e in entries):
        published = out / "sbom" / entry["sbom"]["name"]
        assert hashlib.sha256(published.read_bytes()).hexdigest() == entry["sbom"]["sha256"]
        deployed = target / entry["install_target"] / "share/venv/metadata/sbom.cdx.json"
        assert published.read_bytes() == deployed.read_bytes()


def test_the_stack_sbom_of_a_deployed_app_lists_every_layer(tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    wheels = tmp_path / "wheels"
    make_wheel(wheels, "alpha", "1.0")
    make_wheel(wheels, "beta", "2.0", requires=["alpha"])
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "venvstacks.toml").write_text(textwrap.dedent(SPEC))
    (stack / "app.py").write_text("import alpha, beta\nprint(alpha.VERSION, beta.VERSION)\n")
    venvlayers("lock", stack, "--local-wheels", wheels, "--no-index")
    venvlayers("build", stack, "--publish")
    target = tmp_path / "target"
    venvlayers("deploy", stack / "_artifacts", "--target", target)

    text = venvlayers("sbom", target, "app").stdout
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["metadata"]["component"]["name"] == "app-app"
    purls = {c.get("purl") for c in bom["components"]}
    assert {"pkg:pypi/alpha@1.0", "pkg:pypi/beta@2.0"} <= purls
    names = {c["name"] for c in bom["components"]}
    assert {"cpython", "framework-fw", "cpython@3.11"} <= names
    bad = venvlayers("sbom", target, "nope", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
