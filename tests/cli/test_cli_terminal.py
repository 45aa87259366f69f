"""What a person sees on a terminal (through a pseudo-terminal), and `run` on an export.

On a terminal, long steps show a line per layer with a spinner, a clock and, where bytes
count, a bar labelled with its unit; off a terminal, with --json, -q or --no-progress,
none of it.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.deploy.deploy_support import fake_stack


def in_terminal(*args: str | Path, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run venvlayers with stderr on a pseudo-terminal; (status, stdout, terminal text)."""
    main, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "venvlayers", *map(str, args)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, cwd=cwd, env=env,
    )  # fmt: skip
    os.close(secondary)
    seen = bytearray()
    while True:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            seen.extend(chunk)
        elif process.poll() is not None:
            break
    os.close(main)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    return process.wait(), out, seen.decode(errors="replace")


def test_deploy_on_a_terminal_shows_bytes_unpacked_and_compile_counts(tmp_path: Path) -> None:
    published = fake_stack(tmp_path / "fake")
    status, out, terminal = in_terminal("deploy", published, "--target", tmp_path / "t")
    assert status == 0, terminal
    assert "KiB unpacked" in terminal or " B unpacked" in terminal
    assert "byte-compiling" in terminal
    assert "app-hello: deployed" in out
    # Sizes in the one style: never "0.0 MiB".
    assert "0.0 MiB" not in terminal + out


@pytest.mark.parametrize("flag", ["--json", "-q", "--no-progress"])
def test_no_bars_with_json_quiet_or_no_progress(tmp_path: Path, flag: str) -> None:
    published = fake_stack(tmp_path / "fake")
    status, out, terminal = in_terminal("deploy", published, "--target", tmp_path / "t", flag)
    assert status == 0, terminal
    assert "unpacked" not in terminal
    if flag == "--json":
        assert json.loads(out)["command"] == "deploy"
    if flag == "-q":
        assert terminal.strip() == ""


SPEC = """
[[runtimes]]
name = "cpython@3.11"
python_implementation = "cpython@3.11"
requirements = []
platforms = ["linux_x86_64"]

[[applications]]
name = "hello"
launch_module = "hello.py"
runtime = "cpython@3.11"
requirements = []
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("terminal") / "stack"
    root.mkdir()
    (root / "venvstacks.toml").write_text(textwrap.dedent(SPEC))
    (root / "hello.py").write_text("import sys\nprint('hello', *sys.argv[1:])\nsys.exit(3)\n")
    result = subprocess.run(
        [sys.executable, "-m", "venvlayers", "build", root, "--lock-if-needed", "-q"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root


@pytest.mark.slow
def test_publish_on_a_terminal_labels_bytes_read_and_the_compressed_size(built: Path) -> None:
    status, out, terminal = in_terminal("publish", built, "--force", "-o", "pub")
    assert status == 0, terminal
    assert "read" in terminal and "MiB" in terminal
    assert "cpython@3.11.tar.zst: written (" in out and "MiB compressed)" in out
    assert (built / "pub" / "__venvstacks__" / "venvstacks.json").is_file()


@pytest.mark.slow
def test_an_exported_folder_is_a_deployment_for_run_verify_and_gc(
    built: Path, tmp_path: Path
) -> None:
    status, out, terminal = in_terminal("local-export", built, "-o", tmp_path / "exp")
    assert status == 0, terminal
    assert "app-hello: exported to" in out
    exported = tmp_path / "exp"
    run = subprocess.run(
        [sys.executable, "-m", "venvlayers", "run", exported, "hello", "--", "world"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert (run.returncode, run.stdout) == (3, "hello world\n"), run.stderr
    verify = subprocess.run(
        [sys.executable, "-m", "venvlayers", "verify", exported, "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout
    assert json.loads(verify.stdout)["ok"] is True
    gc = subprocess.run(
        [sys.executable, "-m", "venvlayers", "gc", exported, "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert gc.returncode == 0 and json.loads(gc.stdout)["layers"] == []


@pytest.mark.slow
def test_every_reporting_command_prints_one_json_document(built: Path, tmp_path: Path) -> None:
    def doc(*args: str | Path, status: int = 0) -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-m", "venvlayers", *map(str, args), "--json"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == status, result.stderr
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data

    lock = doc("lock", built, "--if-needed")
    assert lock["command"] == "lock" and lock["layers"]
    build = doc("build", built)
    assert build["layers"] and {"name", "action", "reason", "seconds", "path"} <= set(
        build["layers"][0]  # type: ignore[index]
    )
    publish = doc("publish", built)
    layer = publish["layers"][0]  # type: ignore[index]
    assert {"name", "action", "archive", "size", "sha256"} <= set(layer)
    export = doc("local-export", built, "-o", tmp_path / "exp")
    assert export["apps"] == ["app-hello"]
    up = doc("up", built, "--target", tmp_path / "t", status=1)
    assert up["command"] == "up" and up["ok"] is False  # hello exits 3
    assert up["runs"][0]["status"] == 3  # type: ignore[index]
