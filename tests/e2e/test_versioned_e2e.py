"""A versioned framework: a new lock version deploys beside the old one until no app uses it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import EXAMPLE, venvlayers

pytestmark = [pytest.mark.slow, pytest.mark.network]


def _set_framework(spec: Path, requirements: str) -> None:
    text = spec.read_text()
    start = text.index("[[frameworks]]")
    end = text.index("[[applications]]")
    framework = (
        '[[frameworks]]\nname = "sklearn"\nruntime = "cpython@3.11"\nversioned = true\n'
        f"requirements = {requirements}\n\n"
    )
    spec.write_text(text[:start] + framework + text[end:])


def test_new_framework_version_lives_beside_the_old(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(
        EXAMPLE, stack, ignore=shutil.ignore_patterns("_build", "_artifacts", "_deploy")
    )
    spec = stack / "venvstacks.toml"
    _set_framework(spec, '["scikit-learn>=1.4", "tqdm"]')
    target = tmp_path / "target"

    venvlayers("lock", stack, "--if-needed")
    venvlayers("build", stack, "--publish")
    venvlayers("deploy", stack / "_artifacts", "--target", target)
    assert (target / "framework-sklearn@1").is_dir()
    assert "iris accuracy" in venvlayers("run", target, "classify").stdout

    # A changed lock gives the framework a new version; apps above it relock and rebuild.
    _set_framework(spec, '["scikit-learn>=1.4", "tqdm", "six"]')
    assert "  *framework-sklearn -> framework-sklearn@1" in venvlayers("show", stack).stdout
    venvlayers("lock", stack, "--if-needed")
    assert "   framework-sklearn -> framework-sklearn@2" in venvlayers("show", stack).stdout
    built = venvlayers("build", stack, "--publish").stdout
    assert "framework-sklearn@2: built" in built
    assert not (stack / "_build/framework-sklearn@1").exists()
    index = json.loads((stack / "_artifacts/__venvstacks__/venvstacks.json").read_text())
    classify = next(a for a in index["layers"]["applications"] if a["layer_name"] == "app-classify")
    assert classify["required_layers"] == ["framework-sklearn@2"]

    venvlayers("deploy", stack / "_artifacts", "--target", target, "--app", "classify")
    assert (target / "framework-sklearn@1").is_dir()
    assert (target / "framework-sklearn@2").is_dir()
    out = venvlayers("run", target, "classify").stdout
    assert "iris accuracy" in out
    # cluster-report was not redeployed: it still uses version 1, so gc keeps it.
    assert "nothing to remove" in venvlayers("gc", target).stdout
    assert "3 clusters" in venvlayers("run", target, "cluster-report").stdout

    venvlayers("deploy", stack / "_artifacts", "--target", target)
    removed = venvlayers("gc", target).stdout
    assert "framework-sklearn@1: removed" in removed
    assert not (target / "framework-sklearn@1").exists()
    assert "3 clusters" in venvlayers("run", target, "cluster-report").stdout
    assert venvlayers("verify", target).returncode == 0
