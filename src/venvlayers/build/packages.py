"""Install a layer's own locked packages into an environment with uv."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

from packaging.markers import Marker

from venvlayers._proc import run
from venvlayers._uv import uv_binary, uv_environment
from venvlayers.errors import BuildError
from venvlayers.lock import LayerLock, LockedPackage, LockedWheel, WheelTarget, platform_of

# Marker values of the target interpreter: the interpreter itself reports them, since
# the tool's own Python may be a different version.
_MARKER_PROBE = """
import json, os, platform, sys
impl = sys.implementation
v = impl.version
iver = f"{v.major}.{v.minor}.{v.micro}" + ("" if v.releaselevel == "final" else v.releaselevel[0] + str(v.serial))
print(json.dumps({
    "implementation_name": impl.name,
    "implementation_version": iver,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"""


def probe_marker_environment(python: Path) -> dict[str, str]:
    # Every venv of a runtime links to the same interpreter: probe it once.
    return dict(_probe_markers(os.path.realpath(python)))


@functools.cache
def _probe_markers(python: str) -> tuple[tuple[str, str], ...]:
    # -I -S: no site, no user environment; the probe needs only the stdlib and starts faster.
    result = run(
        [python, "-I", "-S", "-c", _MARKER_PROBE], what=f"{python}: read marker environment"
    )
    env: dict[str, str] = json.loads(result.stdout)
    return tuple(sorted(env.items()))


def installed_wheels(
    lock: LayerLock, marker_env: dict[str, str]
) -> list[tuple[LockedPackage, LockedWheel]]:
    """Each package this layer installs itself on the interpreter ``marker_env`` describes,
    with the one wheel that goes in (what the build installs and the SBOM lists)."""
    target = wheel_target(lock, marker_env)
    chosen = []
    for package in lock.packages:
        if package.provided_by is not None:
            continue
        if package.marker and not Marker(package.marker).evaluate(marker_env):
            continue
        best = target.best(w.name for w in package.wheels) if target else None
        wheel = next((w for w in package.wheels if w.name == best), None)
        if wheel is None:
            raise BuildError(_no_wheel_message(lock, package, marker_env))
        chosen.append((package, wheel))
    return chosen


def requirement_lines(lock: LayerLock, marker_env: dict[str, str]) -> list[str]:
    """``name @ wheel-url --hash=...`` for each package this layer installs itself."""
    lines = []
    for package, wheel in installed_wheels(lock, marker_env):
        if wheel.url:
            source = f"{package.name} @ {wheel.url}"
        elif wheel.path:
            # A wheel from --local-wheels, recorded relative to the lock file.
            local = (lock.lock_path.parent / wheel.path).resolve()
            source = f"{package.name} @ {local.as_uri()}"
        else:
            source = f"{package.name}=={package.version}"
        lines.append(f"{source} --hash=sha256:{wheel.sha256}")
    return lines


def wheel_target(lock: LayerLock, marker_env: dict[str, str]) -> WheelTarget | None:
    """The lock's own wheel rules for the interpreter ``marker_env`` describes (None: a
    platform no lock can name), so the build installs exactly what locking accepted."""
    platform = platform_of(marker_env)
    if platform is None:
        return None
    return WheelTarget(
        platform=platform,
        implementation=marker_env.get("implementation_name", "cpython"),
        feature_version=marker_env["python_version"],
        linux_target=lock.linux_target,
        macosx_target=lock.macosx_target,
    )


def _no_wheel_message(lock: LayerLock, package: LockedPackage, marker_env: dict[str, str]) -> str:
    """Why the lock has no wheel to install here, and what the user can change."""
    version = marker_env["python_version"]
    platform = platform_of(marker_env)
    if platform is None or (lock.platforms and platform not in lock.platforms):
        # The lock was never meant for this host.
        return (
            f"{lock.build_name}: no wheel of {package.name}=={package.version} fits this"
            f" platform ({platform or 'unknown'}, Python {version}); relock with this platform"
            " in 'platforms'"
        )
    # The platform is locked, so the package was accepted without a wheel
    # (--accept-missing-wheels).
    python = f"{marker_env.get('platform_python_implementation', 'CPython')} {version}"
    return (
        f"{lock.build_name}: no wheel of {package.name} {package.version} for {platform} /"
        f" {python} in the lock (it was accepted with --accept-missing-wheels; sdists are never"
        " built);"
        f" pin a version of {package.name} that has a wheel for {platform}, or drop the"
        " requirement that brings it in, then relock"
    )


def install_locked(
    lock: LayerLock, python: Path, *, work_dir: Path, extra_args: Sequence[str] = ()
) -> int:
    """Install the layer's own packages into the environment of ``python``; returns the count."""
    lines = requirement_lines(lock, probe_marker_environment(python))
    if not lines:
        return 0
    requirements = work_dir / f".{lock.build_name}.requirements.txt"
    requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        run(
            [
                uv_binary(), "pip", "install", "--python", python, "--no-deps", "--require-hashes",
                "--no-config", "--only-binary", ":all:", "--break-system-packages",
                *extra_args, "-r", requirements,
            ],
            what=f"{lock.build_name}: uv pip install",
            env=uv_environment(),
        )  # fmt: skip
    finally:
        requirements.unlink(missing_ok=True)
    return len(lines)
