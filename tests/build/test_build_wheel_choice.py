"""The build installs exactly the wheel that locking accepted, by one tag selector."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvlayers.build.packages import requirement_lines
from venvlayers.lock import LayerLock, LockedPackage, LockedWheel
from venvlayers.lock.platforms import marker_environment

WHEELS = (
    "demo-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "demo-1.0-pp310-pypy310_pp73-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "demo-1.0-cp310-cp310-win_amd64.whl",
    "demo-1.0-py3-none-any.whl",
)


def lock_of(*names: str) -> LayerLock:
    wheels = tuple(
        LockedWheel(name=n, url=f"https://files.example/{n}", sha256=f"{i:064x}")
        for i, n in enumerate(names)
    )
    return LayerLock(
        build_name="framework-demo",
        packages=(LockedPackage("demo", "1.0", None, wheels, None),),
        lock_version=1,
        locked_at="2025-01-01T00:00:00+00:00",
        requirements_hash="sha256:" + "0" * 64,
        lock_path=Path("pylock.toml"),
        meta_path=Path("pylock.meta.json"),
        platforms=("linux_x86_64", "win_amd64"),
        python_version="3.10",
    )


def chosen(lock: LayerLock, implementation: str, platform: str = "linux_x86_64") -> str:
    env = marker_environment(platform, implementation, "3.10")
    env["implementation_name"] = implementation
    (line,) = requirement_lines(lock, env)
    return line.split(" @ ")[1].split(" --hash")[0].rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("implementation", "platform", "expected"),
    [
        ("cpython", "linux_x86_64", WHEELS[0]),
        ("pypy", "linux_x86_64", WHEELS[1]),
        ("cpython", "win_amd64", WHEELS[2]),
    ],
)
def test_the_most_specific_wheel_for_the_interpreter_is_installed(
    implementation: str, platform: str, expected: str
) -> None:
    assert chosen(lock_of(*WHEELS), implementation, platform) == expected


def test_a_pypy_runtime_never_installs_a_cpython_wheel() -> None:
    only_cpython_and_pure = lock_of(WHEELS[0], WHEELS[3])
    assert chosen(only_cpython_and_pure, "pypy") == WHEELS[3]


def test_a_wheel_newer_than_the_linux_target_is_not_installed() -> None:
    newer = "demo-1.0-cp310-cp310-manylinux_2_34_x86_64.whl"
    assert chosen(lock_of(newer, WHEELS[3]), "cpython") == WHEELS[3]
