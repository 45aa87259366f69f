"""``packages-<build name>.txt``: the human-readable list of a layer's locked packages."""

from __future__ import annotations

from collections.abc import Sequence

from venvlayers.lock.model import LockedPackage
from venvlayers.lock.pylock import sort_packages


def render_summary(
    build_name: str, python: str, platforms: Sequence[str], packages: Sequence[LockedPackage]
) -> str:
    ordered = sort_packages(packages)
    own = [p for p in ordered if p.provided_by is None]
    inherited = [p for p in ordered if p.provided_by is not None]
    lines = [
        f"# {build_name}: packages locked by `venvlayers lock` (generated; do not edit)",
        f"# Python {python}; platforms: {', '.join(platforms)}",
        "",
        *(_line(p) for p in own),
    ]
    if not own:
        lines.append("# (no packages of its own)")
    if inherited:
        lines += ["", "# Inherited from lower layers (installed there, not here):"]
        lines += [f"{_line(p)}  # from {p.provided_by}" for p in inherited]
    return "\n".join(lines) + "\n"


def _line(package: LockedPackage) -> str:
    return f"{package.pin} ; {package.marker}" if package.marker else package.pin
