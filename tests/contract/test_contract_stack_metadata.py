"""Hostile or broken published metadata: refused in one line naming the field, target unchanged.

Each case edits a valid fake stack's ``venvstacks.json`` (and, as a publisher or an
attacker would, its ``env_metadata`` files to match), then deploys it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_support import fake_stack, rewrite_index
from venvlayers.contract import LayerKind, read_stack_metadata
from venvlayers.errors import MetadataError

Index = dict[str, Any]


def first(index: Index, table: str) -> dict[str, Any]:
    entry: dict[str, Any] = index["layers"][table][0]
    return entry


def setter(table: str, key: str, value: Any) -> Callable[[Index], None]:
    def edit(index: Index) -> None:
        first(index, table)[key] = value

    return edit


def deep(index: Index) -> None:
    first(index, "runtimes")["extra"] = "DEEP"


def cycle(index: Index) -> None:
    framework = first(index, "frameworks")
    framework["required_layers"] = [framework["install_target"]]


def duplicate(index: Index) -> None:
    index["layers"]["applications"].append(dict(first(index, "applications")))


CASES: list[tuple[str, Callable[[Index], None], str]] = [
    ("lock_version text", setter("frameworks", "lock_version", "x"),
     "layers.frameworks[0].lock_version: must be an integer >= 1, not \"x\""),
    ("lock_version null", setter("frameworks", "lock_version", None),
     "lock_version: must be an integer >= 1, not null"),
    ("lock_version list", setter("frameworks", "lock_version", [1]),
     "lock_version: must be an integer >= 1, not a list"),
    ("lock_version bool", setter("frameworks", "lock_version", True), "lock_version"),
    ("layer_name int", setter("applications", "layer_name", 7),
     "layers.applications[0].layer_name: must be a non-empty string, not 7"),
    ("layer_name null", setter("applications", "layer_name", None), "layer_name"),
    ("install_target state dir", setter("applications", "install_target", ".venvlayers"),
     "install_target: \".venvlayers\" is not a legal layer name"),
    ("install_target dotdot", setter("applications", "install_target", ".."), "install_target"),
    ("install_target slash", setter("applications", "install_target", "a/b"),
     "install_target"),
    ("install_target list", setter("applications", "install_target", ["x"]),
     "install_target: must be a non-empty string, not a list"),
    ("long name", setter("applications", "install_target", "a" * 250),
     "install_target: longer than 128 characters (250)"),
    ("archive_name climbs", setter("runtimes", "archive_name", "../elsewhere.tar.zst"),
     "archive_name"),
    ("archive_name absolute", setter("runtimes", "archive_name", "/etc/passwd"),
     "archive_name"),
    ("sha256 not hex", setter("runtimes", "archive_hashes", {"sha256": "zz"}),
     "archive_hashes.sha256: must be 64 lowercase hex digits"),
    ("archive_size negative", setter("runtimes", "archive_size", -1), "archive_size"),
    ("required_layers text", setter("applications", "required_layers", "framework"),
     "required_layers: must be a list of layer names"),
    ("required_layers a runtime", setter("applications", "required_layers", ["cpython@X"]),
     "required_layers"),
    ("cycle", cycle, "required_layers form a cycle"),
    ("duplicate", duplicate, "appears twice"),
    ("layers a list", lambda index: index.update(layers=[]),
     "layers: must be a JSON object, not a list"),
    ("applications an object", lambda index: index["layers"].update(applications={}),
     "layers.applications: must be a list, not an object"),
    ("entry a string", lambda index: index["layers"].update(runtimes=["x"]),
     "layers.runtimes[0]: must be a JSON object"),
    ("deep nesting", deep, "nested more than 32 levels deep"),
    ("app without launch module", setter("applications", "app_launch_module", None),
     "app_launch_module"),
]  # fmt: skip


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_stack(tmp_path_factory.mktemp("meta"))


@pytest.fixture
def out(pristine: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(pristine, tmp_path / "out"))


def load_index(out: Path) -> Index:
    index: Index = json.loads((out / "__venvstacks__/venvstacks.json").read_text())
    return index


@pytest.mark.parametrize(("case", "edit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_metadata_is_refused_naming_the_field(
    out: Path, tmp_path: Path, case: str, edit: Callable[[Index], None], expected: str
) -> None:
    index = load_index(out)
    if case == "required_layers a runtime":
        edit = setter(
            "applications", "required_layers", [first(index, "runtimes")["install_target"]]
        )
    edit(index)
    if case in ("layers a list", "entry a string"):
        (out / "__venvstacks__/venvstacks.json").write_text(json.dumps(index))
    else:
        rewrite_index(out, index)
    if case == "deep nesting":
        # 3,000 levels: more than json.dumps (or an unguarded json.loads) can recurse into.
        for path in (out / "__venvstacks__").rglob("*.json"):
            text = path.read_text().replace('"DEEP"', "[" * 3000 + "]" * 3000)
            path.write_text(text)
    target = tmp_path / "target"
    result = subprocess.run(
        [sys.executable, "-m", "venvlayers", "deploy", out, "--target", target],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert expected in lines[0], lines[0]
    assert not target.exists(), "nothing is created for refused metadata"


def test_a_stale_env_metadata_file_is_refused(out: Path) -> None:
    index = load_index(out)
    first(index, "frameworks")["lock_version"] = 7
    (out / "__venvstacks__/venvstacks.json").write_text(json.dumps(index))
    with pytest.raises(MetadataError, match=r"disagrees with __venvstacks__/venvstacks\.json"):
        read_stack_metadata(out)


def test_venvstacks_shapes_are_accepted_and_unknown_fields_kept(out: Path) -> None:
    index = load_index(out)
    runtime = first(index, "runtimes")
    del runtime["required_layers"]
    first(index, "applications")["app_support_modules"] = ["helper"]
    first(index, "applications")["future_field"] = {"any": 1}
    rewrite_index(out, index)
    _, layers = read_stack_metadata(out)
    app = next(layer for layer in layers if layer.kind is LayerKind.APPLICATION)
    assert app.extra == {"app_support_modules": ["helper"], "future_field": {"any": 1}}
    assert app.to_json()["future_field"] == {"any": 1}
    runtime_pub = next(layer for layer in layers if layer.kind is LayerKind.RUNTIME)
    assert runtime_pub.required_layers == ()
