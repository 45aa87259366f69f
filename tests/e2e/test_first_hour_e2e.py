"""What a new user reaches first: `up` on any stack, Ctrl-C, relative paths everywhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import venvlayers

pytestmark = [pytest.mark.slow]

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

[[applications]]
name = "serve"
launch_module = "serve.py"
runtime = "cpython@3.11"
requirements = []

[[applications]]
name = "fail"
launch_module = "fail.py"
runtime = "cpython@3.11"
requirements = []
"""

SERVE = """
import http.server, os, pathlib

server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
pathlib.Path(os.environ["SERVE_PID_FILE"]).write_text(str(os.getpid()))
print("serving on port", server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("up") / "stack"
    root.mkdir()
    (root / "venvstacks.toml").write_text(SPEC)
    (root / "hello.py").write_text("print('hello from the app')\n")
    (root / "fail.py").write_text("raise SystemExit(3)\n")
    (root / "serve.py").write_text(textwrap.dedent(SERVE))
    return root


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_stops_a_serving_app_after_the_time_limit(stack: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "serve.pid"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "venvlayers", "up", stack, "--target", tmp_path / "t",
         "--run", "hello", "--run", "serve", "--run-timeout", "5"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "VENVLAYERS_RUNTIME_SOURCE": "local", "SERVE_PID_FILE": str(pid_file)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hello from the app" in result.stdout
    assert "hello: ran" in result.stdout
    assert "serve: still running after 5 s; stopped (a service?)" in result.stdout
    ran = [
        line.rsplit(" ", 1)[-1] for line in result.stderr.splitlines() if "$ venvlayers run" in line
    ]
    assert ran == ["hello", "serve"], "only the apps named run"
    assert not alive(int(pid_file.read_text())), "the service was stopped"
    assert time.monotonic() - started < 590


def test_up_reports_an_app_that_fails(stack: Path, tmp_path: Path) -> None:
    result = venvlayers("up", stack, "--target", tmp_path / "t", "--run", "fail", check=False)
    assert result.returncode == 1
    assert "error: fail: exited with status 3" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_refuses_an_unknown_app_before_doing_anything(stack: Path, tmp_path: Path) -> None:
    result = venvlayers("up", stack, "--target", tmp_path / "t", "--run", "nope", check=False)
    assert result.returncode == 1
    assert "--run nope: no app of that name" in result.stderr
    assert not (tmp_path / "t").exists()


def test_ctrl_c_during_up_is_one_line_and_status_130(stack: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "serve.pid"
    target = tmp_path / "t"
    # As a terminal does: SIGINT to venvlayers' whole foreground process group.
    process = subprocess.Popen(
        [sys.executable, "-m", "venvlayers", "up", stack, "--target", target,
         "--run", "serve", "--run-timeout", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "VENVLAYERS_RUNTIME_SOURCE": "local", "SERVE_PID_FILE": str(pid_file)},
    )  # fmt: skip
    deadline = time.monotonic() + 500
    while not pid_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_file.exists(), process.communicate()
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted")
    assert not alive(int(pid_file.read_text())), "the app was stopped with venvlayers"
    # The deployment made before the interruption is whole and usable.
    run = venvlayers("run", target, "hello")
    assert "hello from the app" in run.stdout


def run_in(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args)],
        capture_output=True, text=True, cwd=cwd,
        env={**os.environ, "VENVLAYERS_RUNTIME_SOURCE": "local"},
    )  # fmt: skip


def partial_folders(root: Path) -> list[Path]:
    return [p for p in root.rglob("*partial*")]


def test_every_command_takes_relative_paths_with_dotdot(stack: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    spec = os.path.relpath(stack, work / "sub")
    # --build-dir and --output-dir lie in the spec's folder when relative, as in venvstacks;
    # every other path lies in the current folder.
    work_from_spec = os.path.relpath(work, stack)
    steps = [
        ["lock", spec, "--if-needed"],
        ["build", spec, "--build-dir", f"{work_from_spec}/b/../build"],
        ["local-export", spec, "--build-dir", f"{work_from_spec}/build",
         "--output-dir", f"{work_from_spec}/exp"],
        ["publish", spec, "--build-dir", f"{work_from_spec}/x/../build",
         "-o", f"{work_from_spec}/out/../pub"],
        ["deploy", "../pub", "--target", "../t/../target", "--app", "hello"],
        ["run", "../target", "hello"],
        ["verify", "../target"],
        ["gc", "../target"],
    ]  # fmt: skip
    for step in steps:
        result = run_in(work / "sub", *step)
        assert result.returncode == 0, (step, result.stderr)
    assert "hello from the app" in run_in(work, "run", "target", "hello").stdout
    exported = subprocess.run(
        [work / "exp/app-hello/bin/python", "-m", "hello"], capture_output=True, text=True
    )
    assert exported.stdout == "hello from the app\n", exported.stderr
    assert (work / "pub" / "__venvstacks__" / "venvstacks.json").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["build", "exp", "pub", "sub", "target"]
    assert partial_folders(work) == []


def test_a_failed_export_leaves_no_partial_folder(stack: Path, tmp_path: Path) -> None:
    build = tmp_path / "build"
    assert (
        run_in(tmp_path, "build", stack, "--build-dir", build, "--lock-if-needed").returncode == 0
    )
    # A layer whose postinstall.py fails part way through the export.
    script = build / "app-fail" / "postinstall.py"
    script.write_text("raise SystemExit('postinstall broke')\n")
    out = tmp_path / "exp"
    result = run_in(tmp_path, "local-export", stack, "--build-dir", build, "-o", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert partial_folders(out) == []
    assert not (out / "app-fail").exists()
