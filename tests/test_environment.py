"""Settings from the process environment are read in one place and passed on as values."""

from __future__ import annotations

import ast
from pathlib import Path

from venvlayers.environment import Environment
from venvlayers.spec import load_stack

SRC = Path(__file__).resolve().parents[1] / "src" / "venvlayers"
# Modules that hand the environment on to child processes (uv, interpreters, postinstall.py)
# or discover the host's interpreters: they read variables that are not venvlayers settings.
PASS_THROUGH = {
    "environment.py", "_uv.py", "_injected/postinstall.py", "runtime/discovery.py",
    "runtime/probe.py", "runtime/relocate_elf.py", "contract/postinstall.py", "oci/image.py",
}  # fmt: skip


def test_only_the_environment_module_reads_settings_from_the_environment() -> None:
    readers = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC).as_posix()
        if relative in PASS_THROUGH:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.append(f"{relative}:{node.lineno}")
    assert readers == []


def test_defaults_come_from_the_mapping_given() -> None:
    env = Environment.from_mapping(
        {"XDG_CACHE_HOME": "/xdg", "UV_EXCLUDE_NEWER": "2030-01-01", "VENVLAYERS_PBS_MIRROR": ""},
        home=Path("/home/u"),
    )
    assert env.cache_dir == Path("/xdg/venvlayers")
    assert env.exclude_newer == "2030-01-01"
    assert env.pbs_mirror is None, "an empty variable is unset"
    assert Environment.from_mapping({}, home=Path("/h")).cache_dir == Path("/h/.cache/venvlayers")


def test_a_stack_takes_its_defaults_from_the_environment_given(tmp_path: Path) -> None:
    (tmp_path / "venvstacks.toml").write_text(
        '[[runtimes]]\nname = "cpython@3.11"\npython_implementation = "cpython@3.11"\n'
        "requirements = []\n"
    )
    env = Environment(
        cache_dir=tmp_path, exclude_newer="2030-01-01T00:00:00Z", macosx_deployment_target="14.2"
    )
    stack = load_stack(tmp_path, environment=env)
    assert stack.exclude_newer == "2030-01-01T00:00:00Z"
    assert stack.runtimes[0].macosx_target == "14.2"
