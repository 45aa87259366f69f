"""Target platforms as uv environments, marker environments and wheel tag sets."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from packaging import tags
from packaging.markers import Marker
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from venvlayers.spec.model import ALL_PLATFORMS


@dataclass(frozen=True)
class _Platform:
    sys_platform: str
    machine: str
    system: str
    os_name: str
    # The wheel platform tag's architecture part.
    arch: str


_PLATFORMS = {
    "win_amd64": _Platform("win32", "AMD64", "Windows", "nt", "amd64"),
    "win_arm64": _Platform("win32", "ARM64", "Windows", "nt", "arm64"),
    "linux_x86_64": _Platform("linux", "x86_64", "Linux", "posix", "x86_64"),
    "linux_aarch64": _Platform("linux", "aarch64", "Linux", "posix", "aarch64"),
    "macosx_arm64": _Platform("darwin", "arm64", "Darwin", "posix", "arm64"),
    "macosx_x86_64": _Platform("darwin", "x86_64", "Darwin", "posix", "x86_64"),
}
assert set(_PLATFORMS) == set(ALL_PLATFORMS)

# Platform tags that manylinux_2_X aliases had before PEP 600: (glibc minor, archs).
_LEGACY_MANYLINUX = {
    "manylinux1": (5, ("x86_64", "i686")),
    "manylinux2010": (12, ("x86_64", "i686")),
    "manylinux2014": (17, ("x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x")),
}


def platform_of(marker_env: Mapping[str, str]) -> str | None:
    """The layer platform (``linux_x86_64``...) an interpreter's marker values describe."""
    for name, spec in _PLATFORMS.items():
        if (marker_env.get("sys_platform"), marker_env.get("platform_machine", "").lower()) == (
            spec.sys_platform,
            spec.machine.lower(),
        ):
            return name
    return None


def platform_marker(platform: str) -> str:
    """The PEP 508 marker that selects ``platform`` (as written into locks)."""
    spec = _PLATFORMS[platform]
    return f"sys_platform == '{spec.sys_platform}' and platform_machine == '{spec.machine}'"


def platforms_marker(platforms: Sequence[str], all_platforms: Sequence[str]) -> str | None:
    """A marker for ``platforms`` out of the layer's ``all_platforms`` (None: all of them)."""
    chosen = [p for p in all_platforms if p in platforms]
    if len(chosen) == len(all_platforms):
        return None
    if len(chosen) == 1:
        return platform_marker(chosen[0])
    return " or ".join(f"({platform_marker(p)})" for p in chosen)


def uv_environment(platform: str, implementation: str, feature_version: str) -> str:
    """One entry of uv's ``environments``: the platform for this exact Python X.Y."""
    major, minor = (int(part) for part in feature_version.split("."))
    return (
        f"python_full_version >= '{major}.{minor}' and python_full_version < '{major}.{minor + 1}'"
        f" and implementation_name == '{implementation}' and {platform_marker(platform)}"
    )


def marker_environment(platform: str, implementation: str, feature_version: str) -> dict[str, str]:
    """Marker values of a ``platform`` interpreter of ``implementation`` ``X.Y``.

    The maintenance release is unknown at lock time: ``X.Y.0`` stands in for it.
    """
    spec = _PLATFORMS[platform]
    full = f"{feature_version}.0"
    return {
        "implementation_name": implementation,
        "implementation_version": full,
        "os_name": spec.os_name,
        "platform_machine": spec.machine,
        "platform_python_implementation": "PyPy" if implementation == "pypy" else "CPython",
        "platform_release": "",
        "platform_system": spec.system,
        "platform_version": "",
        "python_full_version": full,
        "python_version": feature_version,
        "sys_platform": spec.sys_platform,
    }


def applicable_platforms(
    marker: str | None, platforms: Iterable[str], implementation: str, feature_version: str
) -> tuple[str, ...]:
    """The platforms among ``platforms`` on which ``marker`` holds."""
    if not marker:
        return tuple(platforms)
    parsed = Marker(marker)
    return tuple(
        p
        for p in platforms
        if parsed.evaluate(marker_environment(p, implementation, feature_version))
    )


@dataclass(frozen=True)
class WheelTarget:
    """What a wheel must support to install on one platform of a layer."""

    platform: str
    implementation: str
    feature_version: str
    linux_target: str
    macosx_target: str

    def accepts(self, filename: str) -> bool:
        return self.rank(filename) is not None

    def rank(self, filename: str) -> int | None:
        """How well a wheel fits (0: the most specific tag), or None when it does not."""
        try:
            _name, _version, _build, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return None
        ranks = _tag_ranks(self)
        return min((ranks[tag] for tag in wheel_tags if tag in ranks), default=None)

    def best(self, filenames: Iterable[str]) -> str | None:
        """The best fitting of ``filenames`` (what an installer would pick), or None."""
        ranked = [(rank, name) for name in filenames if (rank := self.rank(name)) is not None]
        return min(ranked)[1] if ranked else None


@functools.cache
def _tag_ranks(target: WheelTarget) -> dict[tags.Tag, int]:
    ranks: dict[tags.Tag, int] = {}
    for position, tag in enumerate(_supported_tags(target)):
        ranks.setdefault(tag, position)
    return ranks


def _supported_tags(target: WheelTarget) -> list[tags.Tag]:
    """Every tag a wheel may carry to install on ``target``, the most specific first."""
    platform_tags = _platform_tags(target)
    major, minor = (int(part) for part in target.feature_version.split("."))
    version = (major, minor)
    if target.implementation == "pypy":
        interpreter = f"pp{major}{minor}"
        # PyPy's ABI tag carries its own release series (pp73, ...); any of them fits X.Y.
        abis = [f"pypy{major}{minor}_pp{series}" for series in range(70, 80)]
        found = [*tags.generic_tags(interpreter, abis, platform_tags)]
    else:
        interpreter = f"cp{major}{minor}"
        found = [*tags.cpython_tags(version, [interpreter], platform_tags)]
    found.extend(tags.compatible_tags(version, interpreter, platform_tags))
    return found


def _platform_tags(target: WheelTarget) -> list[str]:
    spec = _PLATFORMS[target.platform]
    if spec.sys_platform == "win32":
        return [f"win_{spec.arch}"]
    if spec.sys_platform == "darwin":
        major, _, minor = target.macosx_target.partition(".")
        return list(tags.mac_platforms((int(major), int(minor or 0)), spec.arch))
    glibc_minor = int(target.linux_target.split(".")[1])
    result = [f"manylinux_2_{m}_{spec.arch}" for m in range(glibc_minor, -1, -1)]
    for legacy, (equivalent, archs) in _LEGACY_MANYLINUX.items():
        if equivalent <= glibc_minor and spec.arch in archs:
            result.append(f"{legacy}_{spec.arch}")
    return result
