"""`venvlayers show` on the example stack, as text and as JSON, and the CLI's basics."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from venvlayers import __version__

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sklearn-demo"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args)], capture_output=True, text=True
    )


@pytest.fixture
def example(tmp_path: Path) -> Path:
    root = tmp_path / "sklearn-demo"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns("_build", "_artifacts", "_export", "_deploy")
    )
    return root


def test_show_prints_the_tree(example: Path) -> None:
    result = cli("show", example)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Runtimes:",
        "   cpython@3.11",
        "Frameworks:",
        "   framework-sklearn",
        "      cpython@3.11",
        "Applications:",
        "   app-classify",
        "      framework-sklearn",
        "      cpython@3.11",
        "   app-cluster-report",
        "      framework-sklearn",
        "      cpython@3.11",
    ]


def test_show_marks_layers_without_a_valid_lock(example: Path) -> None:
    spec = example / "venvstacks.toml"
    spec.write_text(spec.read_text().replace('"tabulate"]', '"tabulate", "rich"]'))
    lines = cli("show", example).stdout.splitlines()
    assert "  *app-cluster-report" in lines
    assert "   app-classify" in lines
    assert lines[-1].startswith("(* = no valid lock")


def test_show_versioned_layers_name_their_deploy_name(example: Path) -> None:
    spec = example / "venvstacks.toml"
    text = spec.read_text().replace('name = "classify"', 'name = "classify"\nversioned = true')
    spec.write_text(text)
    assert "  *app-classify -> app-classify@1" in cli("show", example).stdout.splitlines()


def test_show_include_keeps_lower_and_upper_layers(example: Path) -> None:
    data = json.loads(cli("show", example, "--include", "app-classify", "--json").stdout)
    assert [layer["build_name"] for layer in data["frameworks"]] == ["framework-sklearn"]
    assert [layer["build_name"] for layer in data["applications"]] == ["app-classify"]
    upward = json.loads(cli("show", example, "--include", "sklearn", "--json").stdout)
    assert len(upward["applications"]) == 2


def test_show_json_parses(example: Path) -> None:
    result = cli("show", example, "--json")
    data = json.loads(result.stdout)
    app = data["applications"][0]
    assert app["lower_layers"] == ["framework-sklearn", "cpython@3.11"]
    assert app["locked"] is True
    assert app["launch_module"] == "classify"
    assert data["runtimes"][0]["python_implementation"] == "cpython@3.11"


def test_version_and_help() -> None:
    assert cli("--version").stdout.strip().endswith(__version__)
    for command in ("show", "lock", "build", "publish", "local-export", "deploy", "run",
                    "verify", "remove", "gc", "up"):  # fmt: skip
        result = cli(command, "--help")
        assert result.returncode == 0, command
        assert "Usage: venvlayers" in result.stdout


def test_traceback_only_with_debug(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    plain = cli("show", missing)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        f"error: {missing}: stack specification not found (check the path)"
    ]
    debug = cli("--debug", "show", missing)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


def test_usage_errors_are_one_line() -> None:
    result = cli("publish", "somewhere", "--format", "rar")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "'rar' is not one of" in lines[0]
    assert "venvlayers publish --help" in lines[0]
    unknown = cli("build", "somewhere", "--no-such-option")
    assert unknown.returncode == 2
    (line,) = unknown.stderr.strip().splitlines()
    assert line.startswith("error: No such option")
    assert "--no-such-option" in line
    assert line.endswith("(see `venvlayers build --help`)")


def test_no_arguments_prints_help() -> None:
    result = cli()
    assert result.returncode == 0
    assert "Usage: venvlayers" in result.stdout
    assert "deploy" in result.stdout
