"""Issue 15 and issue 14 (defect 2): the CLI as its users' habits expect it.

--json on every reporting command, lock --check, build --frozen, options after the command,
SPEC's default, exit statuses, progress only on a terminal, `run` on an exported folder,
sizes in one style, venvstacks' flags with venvstacks' meaning.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_support import fake_stack
from venvlayers import ui

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sklearn-demo"


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
    return subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env,
    )  # fmt: skip


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    root = tmp_path / "sklearn-demo"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns("_build", "_artifacts", "_export", "_deploy")
    )
    return root


@pytest.fixture
def published(tmp_path: Path) -> Path:
    return fake_stack(tmp_path / "fake")


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


# --- options anywhere, SPEC's default -------------------------------------------------------


@pytest.mark.parametrize("options", [["-v"], ["-q"], ["--debug"], ["--json"], ["--no-progress"]])
def test_output_options_work_after_the_command(example: Path, options: list[str]) -> None:
    after = cli("show", example, *options)
    before = cli(*options, "show", example)
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout


def test_spec_defaults_to_the_current_folders_venvstacks_toml(example: Path) -> None:
    here = cli("show", "--json", cwd=example)
    assert json_of(here)["spec_name"] == str(example / "venvstacks.toml")
    assert cli("show", cwd=example).stdout == cli("show", example).stdout


def test_no_spec_in_the_current_folder_is_one_line(tmp_path: Path) -> None:
    result = cli("lock", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'venvstacks.toml'}: stack specification not found (check the path)"
    )


# --- exit statuses ----------------------------------------------------------------------------


def test_usage_errors_exit_2_and_tool_failures_exit_1(example: Path, tmp_path: Path) -> None:
    usage = cli("lock", example, "--no-such-option")
    assert usage.returncode == 2
    assert usage.stderr.count("\n") == 1
    failure = cli("show", tmp_path / "missing.toml")
    assert failure.returncode == 1


def test_run_passes_the_status_through_and_uses_125_when_it_cannot_start(
    published: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    assert cli("deploy", published, "--target", target).returncode == 0
    assert cli("run", target, "hello").returncode == 0
    no_app = cli("run", target, "nope")
    assert no_app.returncode == 125
    assert no_app.stderr.startswith("error: ") and no_app.stderr.count("\n") == 1
    assert cli("run", tmp_path / "no-such-dir", "hello").returncode == 125
    assert cli("run", tmp_path, "hello").returncode == 125  # nothing deployed there


def test_help_documents_exit_statuses_and_defaults() -> None:
    text = cli("--help").stdout
    assert "Exit status" in text and "125" in text and "130" in text
    assert "./venvstacks.toml" in text
    lock_help = cli("lock", "--help").stdout
    for flag in ("--check", "--accept-missing-wheels", "--allow-missing", "--show-only", "--json"):
        assert flag in lock_help
    assert "--frozen" in cli("build", "--help").stdout
    assert "--no-progress" in cli("deploy", "--help").stdout


# --- lock --check, build --frozen -----------------------------------------------------------


def test_lock_check_passes_on_valid_locks(example: Path) -> None:
    result = cli("lock", example, "--check", "--json")
    assert result.returncode == 0, result.stderr
    doc = json_of(result)
    assert doc["command"] == "lock" and doc["check"] is True and doc["ok"] is True
    assert {layer["action"] for layer in doc["layers"]} == {"valid"}
    assert all(Path(layer["lock_path"]).is_file() for layer in doc["layers"])


def test_lock_check_names_each_stale_layer_and_writes_nothing(example: Path) -> None:
    spec = example / "venvstacks.toml"
    spec.write_text(spec.read_text().replace('"tabulate"]', '"tabulate", "rich"]'))
    before = files_under(example)
    result = cli("lock", example, "--check")
    assert result.returncode == 1
    assert "app-cluster-report: stale" in result.stdout
    assert "app-classify: valid" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("error: stale locks: app-cluster")
    assert files_under(example) == before
    assert "*app-cluster-report" in cli("show", example).stdout


def test_build_frozen_never_locks_and_fails_on_a_missing_lock(example: Path) -> None:
    shutil.rmtree(example / "requirements" / "cpython@3.11")
    result = cli("build", example, "--frozen", "--build-dir", "b")
    assert result.returncode == 1
    assert "--frozen never locks" in result.stderr
    assert not (example / "requirements" / "cpython@3.11").exists()
    both = cli("build", example, "--frozen", "--lock-if-needed")
    assert both.returncode == 2


# --- venvstacks' flags ----------------------------------------------------------------------


def test_a_pattern_matching_no_layer_is_an_error_unless_allow_missing(example: Path) -> None:
    refused = cli("show", example, "--include", "nope*")
    assert refused.returncode == 1
    assert "--include nope*: matches no layer" in refused.stderr
    allowed = cli("show", example, "--include", "nope*", "--include", "app-*", "--allow-missing")
    assert allowed.returncode == 0
    assert "warning: --include nope*" in allowed.stderr
    reset = cli("lock", example, "--reset-lock", "typo", "--show-only")
    assert reset.returncode == 1 and "--reset-lock typo" in reset.stderr


def test_allow_missing_on_lock_still_accepts_missing_wheels_with_a_warning(example: Path) -> None:
    result = cli("lock", example, "--allow-missing", "--show-only")
    assert result.returncode == 0
    assert "--accept-missing-wheels" in result.stderr
    assert "warning" not in cli("lock", example, "--accept-missing-wheels", "--show-only").stderr


def test_show_only_lists_the_selected_operations(example: Path) -> None:
    text = cli("build", example, "--show-only", "--publish").stdout
    assert "   app-classify (build, publish)" in text.splitlines()
    doc = json_of(cli("lock", example, "--show-only", "--json", "--if-needed"))
    # venvstacks' StackStatus shape.
    app = doc["applications"][0]
    assert set(doc) >= {"spec_name", "runtimes", "frameworks", "applications"}
    assert set(app) >= {"name", "install_target", "has_valid_lock", "selected_operations"}
    assert app["selected_operations"] == []
    assert [dep["name"] for dep in app["dependencies"]] == ["framework-sklearn", "cpython@3.11"]
    relock = json_of(cli("lock", example, "--show-only", "--json"))
    assert relock["runtimes"][0]["selected_operations"] == ["lock"]


def test_show_json_holds_venvstacks_fields(example: Path) -> None:
    doc = json_of(cli("show", example, "--json"))
    framework = doc["frameworks"][0]
    assert framework["name"] == "framework-sklearn"  # the build name, as in venvstacks
    assert framework["short_name"] == "sklearn"
    assert framework["has_valid_lock"] is True and framework["selected_operations"] is None


def test_build_and_output_dirs_lie_in_the_specs_folder(example: Path, tmp_path: Path) -> None:
    (example / "a-file").write_text("")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = cli("build", example, "--build-dir", "a-file/b", cwd=elsewhere)
    assert result.returncode == 2
    assert f"{example / 'a-file'} is a file" in result.stderr
    out = cli("local-export", example, "-o", "a-file/x", cwd=elsewhere)
    assert out.returncode == 2 and str(example / "a-file") in out.stderr
    assert list(elsewhere.iterdir()) == []


# --- --json on the deployment commands ------------------------------------------------------


def test_deploy_verify_gc_remove_report_json(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    deployed = cli("deploy", published, "--target", target, "--json")
    assert deployed.returncode == 0, deployed.stderr
    doc = json_of(deployed)
    assert doc["command"] == "deploy" and doc["target"] == str(target)
    layer = doc["layers"][0]
    assert set(layer) >= {"name", "action", "path", "archive", "size", "sha256"}
    assert {x["action"] for x in doc["layers"]} == {"deployed"}
    assert doc["apps"] == ["app-hello", "app-other"]
    assert "deployed" not in deployed.stdout.replace('"deployed"', "")
    again = json_of(cli("deploy", published, "--target", target, "--json"))
    assert {x["action"] for x in again["layers"]} == {"already deployed"}

    verify = json_of(cli("verify", target, "--json"))
    assert verify["command"] == "verify" and verify["ok"] is True

    removed = json_of(cli("remove", target, "other", "--json"))
    assert removed["layers"] == [
        {"name": "app-other", "action": "removed", "reason": "app removed"}
    ]
    gc = json_of(cli("gc", target, "--dry-run", "--json"))
    assert gc["command"] == "gc" and gc["dry_run"] is True and gc["layers"] == []


def test_human_text_goes_to_stderr_with_json(published: Path, tmp_path: Path) -> None:
    result = cli("deploy", published, "--target", tmp_path / "t", "--json")
    json_of(result)  # stdout is the document alone
    assert "app-hello: deployed" in result.stderr


def test_quiet_shows_only_errors_and_the_result(published: Path, tmp_path: Path) -> None:
    result = cli("deploy", published, "--target", tmp_path / "t", "-q")
    assert result.returncode == 0
    assert result.stderr == ""
    assert "app-hello: deployed" in result.stdout


def test_nothing_but_lines_on_a_pipe(published: Path, tmp_path: Path) -> None:
    result = cli("deploy", published, "--target", tmp_path / "t")
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert "unpacked" not in result.stderr  # the byte counts belong to the bars


# --- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (13 * 1024 + 5, "13 KiB"), (2**20, "1.0 MiB"),
     (int(41.46 * 2**20), "41.5 MiB"), (3 * 2**30, "3.0 GiB")],
)  # fmt: skip
def test_sizes_for_people_in_one_style(count: int, text: str) -> None:
    assert ui.size(count) == text
