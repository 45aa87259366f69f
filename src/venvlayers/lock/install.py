"""The requirements text that installs a layer's own locked packages with uv."""

from __future__ import annotations

from packaging.markers import Marker, default_environment

from venvlayers.lock.model import LayerLock


def install_requirements(
    lock: LayerLock, *, platform_marker_env: dict[str, str] | None = None
) -> str:
    """``name==version --hash=sha256:...`` lines for ``uv pip install --no-deps --require-hashes``.

    Only this layer's own packages (not those ``provided_by`` a lower layer) whose marker
    holds in ``platform_marker_env`` (default: the running interpreter's environment).
    Every wheel's hash is listed, so the installer may pick whichever wheel fits.
    """
    env = platform_marker_env if platform_marker_env is not None else _current_environment()
    lines = []
    for package in lock.own_packages:
        if package.marker and not Marker(package.marker).evaluate(env):
            continue
        hashes = " ".join(f"--hash=sha256:{wheel.sha256}" for wheel in package.wheels)
        lines.append(f"{package.pin} {hashes}".rstrip())
    return "".join(f"{line}\n" for line in sorted(lines))


def _current_environment() -> dict[str, str]:
    return {key: str(value) for key, value in default_environment().items()}
