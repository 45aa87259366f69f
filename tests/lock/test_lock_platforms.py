"""Wheel tags against a layer's platforms and targets; platform markers."""

from __future__ import annotations

import pytest

from venvlayers.lock.platforms import WheelTarget, applicable_platforms, platforms_marker


def target(
    platform: str, *, glibc: str = "2.28", macos: str = "13.0", py: str = "3.11"
) -> WheelTarget:
    return WheelTarget(platform, "cpython", py, glibc, macos)


@pytest.mark.parametrize(
    ("wheel", "platform", "accepted"),
    [
        ("numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "linux_x86_64", True),
        ("numpy-2.0.0-cp311-cp311-manylinux_2_28_x86_64.whl", "linux_x86_64", True),
        ("numpy-2.0.0-cp311-cp311-manylinux_2_34_x86_64.whl", "linux_x86_64", False),
        ("numpy-2.0.0-cp311-cp311-musllinux_1_2_x86_64.whl", "linux_x86_64", False),
        ("numpy-2.0.0-cp311-cp311-manylinux_2_28_x86_64.whl", "linux_aarch64", False),
        ("numpy-2.0.0-cp312-cp312-manylinux_2_28_x86_64.whl", "linux_x86_64", False),
        ("numpy-2.0.0-pp311-pypy311_pp73-manylinux_2_28_x86_64.whl", "linux_x86_64", False),
        ("cryptography-43.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "linux_x86_64", True),
        ("numpy-2.0.0-cp311-cp311-macosx_14_0_arm64.whl", "macosx_arm64", False),
        ("numpy-2.0.0-cp311-cp311-macosx_11_0_arm64.whl", "macosx_arm64", True),
        ("numpy-2.0.0-cp311-cp311-macosx_10_9_universal2.whl", "macosx_x86_64", True),
        ("numpy-2.0.0-cp311-cp311-macosx_10_9_x86_64.whl", "macosx_arm64", False),
        ("numpy-2.0.0-cp311-cp311-win_amd64.whl", "win_amd64", True),
        ("numpy-2.0.0-cp311-cp311-win32.whl", "win_amd64", False),
        ("numpy-2.0.0-cp311-cp311-win_arm64.whl", "win_arm64", True),
        ("six-1.16.0-py2.py3-none-any.whl", "win_arm64", True),
        ("not-a-wheel.tar.gz", "linux_x86_64", False),
    ],
)  # fmt: skip
def test_wheel_fits_platform_and_targets(wheel: str, platform: str, accepted: bool) -> None:
    assert target(platform).accepts(wheel) is accepted


def test_targets_move_the_limits() -> None:
    newer_glibc = "x-1.0-cp311-cp311-manylinux_2_34_x86_64.whl"
    assert target("linux_x86_64", glibc="2.34").accepts(newer_glibc)
    assert not target("linux_x86_64", glibc="2.17").accepts(
        "x-1.0-cp311-cp311-manylinux_2_24_x86_64.whl"
    )
    newer_macos = "x-1.0-cp311-cp311-macosx_14_0_arm64.whl"
    assert target("macosx_arm64", macos="14.0").accepts(newer_macos)
    assert target("macosx_arm64", macos="14").accepts(newer_macos)


def test_markers_name_the_platforms_a_package_applies_to() -> None:
    layer = ("linux_x86_64", "win_amd64", "macosx_arm64")
    assert platforms_marker(layer, layer) is None
    assert platforms_marker(["win_amd64"], layer) == (
        "sys_platform == 'win32' and platform_machine == 'AMD64'"
    )
    both = platforms_marker(["macosx_arm64", "linux_x86_64"], layer)
    assert both is not None
    assert applicable_platforms(both, layer, "cpython", "3.11") == ("linux_x86_64", "macosx_arm64")
    assert applicable_platforms("python_version < '3.11'", layer, "cpython", "3.11") == ()
    assert applicable_platforms("os_name == 'nt'", layer, "cpython", "3.11") == ("win_amd64",)
