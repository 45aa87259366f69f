"""Paths given on the command line: resolved once at the edge, refused in one line when unusable.

Every case runs the CLI in a fresh process, from a working directory of the test's choosing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sklearn-demo"


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def one_error_line(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The one error line; ``status`` 2 for a value refused while reading the command line
    (125 for `run`, whose lower statuses belong to the app)."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    root = tmp_path / "work" / "sklearn-demo"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns("_build", "_artifacts", "_export", "_deploy")
    )
    return root


def test_a_relative_spec_with_dotdot_works_from_any_folder(example: Path) -> None:
    inside = example / "launch_modules"
    result = cli("show", "../../sklearn-demo/./", cwd=inside)
    assert result.returncode == 0, result.stderr
    assert "app-classify" in result.stdout


@pytest.mark.parametrize("command", [["deploy", "SRC", "--target", ""], ["gc", ""]])
def test_an_empty_path_is_refused(example: Path, tmp_path: Path, command: list[str]) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    args = [str(example) if a == "SRC" else a for a in command]
    line = one_error_line(cli(*args, cwd=cwd), status=2)
    assert "empty path" in line
    assert list(cwd.iterdir()) == [], "nothing is deployed into the current folder"


@pytest.mark.parametrize("command", ["gc", "remove", "verify", "run"])
def test_a_mistyped_deployment_folder_is_refused_and_not_created(
    tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "no-such-target"
    extra = ["classify"] if command in ("remove", "run") else []
    line = one_error_line(cli(command, missing, *extra), status=125 if command == "run" else 2)
    assert "no-such-target" in line and "does not exist" in line
    assert not missing.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["publish", "SPEC", "-o", "FILE/out"],
        ["deploy", "SPEC", "--target", "FILE/T"],
        ["build", "SPEC", "--build-dir", "FILE/b"],
        ["local-export", "SPEC", "--output-dir", "FILE/sub/x"],
    ],
    ids=lambda a: a[0],
)
def test_a_folder_below_a_file_is_refused(example: Path, tmp_path: Path, args: list[str]) -> None:
    file = tmp_path / "a-file"
    file.write_text("not a folder\n")
    argv = [str(example) if a == "SPEC" else a.replace("FILE", str(file)) for a in args]
    line = one_error_line(cli(*argv), status=2)
    assert "is a file" in line and str(file) in line


@pytest.mark.parametrize("command", ["show", "deploy", "gc", "verify"])
def test_a_path_too_long_is_one_line(tmp_path: Path, command: str) -> None:
    long = str(tmp_path / ("x" * 5000))
    args = {"show": [long], "deploy": [long, "--target", str(tmp_path / "t")]}.get(command, [long])
    line = one_error_line(cli(command, *args), status=2)
    assert "too long" in line or "does not exist" in line


def test_deploy_names_what_it_found_instead_of_published_output(
    example: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    spec_folder = one_error_line(cli("deploy", ".", "--target", target, cwd=example))
    assert "stack specification folder" in spec_folder
    assert f"venvlayers publish {example}" in spec_folder
    assert str(example / "_artifacts") in spec_folder

    spec_file = one_error_line(cli("deploy", "venvstacks.toml", "--target", target, cwd=example))
    assert "stack specification folder" in spec_file

    build = example / "_build"
    build.mkdir()
    (build / "cpython@3.11.build.json").write_text("{}")
    (build / "cpython@3.11").mkdir()
    built = one_error_line(cli("deploy", "_build", "--target", target, cwd=example))
    assert "a build folder (built layers: cpython@3.11)" in built
    assert str(example / "_artifacts") in built

    missing = one_error_line(cli("deploy", "nowhere", "--target", target, cwd=example))
    assert f"{example / 'nowhere'}: no such file or folder" in missing

    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = one_error_line(cli("deploy", empty, "--target", target))
    assert "nothing else venvlayers knows" in nothing
    assert not target.exists(), "a refused deploy creates no target"


@pytest.mark.parametrize("command", ["show", "lock"])
def test_a_spec_nested_3000_deep_is_one_line(tmp_path: Path, command: str) -> None:
    spec = tmp_path / "venvstacks.toml"
    spec.write_text("x = " + "[" * 3000 + "1" + "]" * 3000 + "\n")
    line = one_error_line(cli(command, spec))
    assert f"{spec}: nested too deeply" in line
