"""Turn uv's answer into a layer's packages: per-platform markers, wheels, lower layers.

- A package's marker is rewritten to name the layer platforms it applies to (uv's
  markers also mention the Python version the throwaway project allowed).
- Wheels that fit none of those platforms (other Pythons, musl, a newer glibc or macOS
  than the layer targets) are dropped; a platform left without a wheel is reported.
- A package that a lower layer installs (same version, same platform) is marked
  ``provided_by`` that layer, so it is never installed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from venvlayers.lock.model import LayerLock, LockedPackage
from venvlayers.lock.platforms import WheelTarget, applicable_platforms, platforms_marker
from venvlayers.lock.resolve import ResolvedPackage


@dataclass(frozen=True)
class LayerTarget:
    """The platforms and Python one layer is locked for."""

    platforms: tuple[str, ...]
    implementation: str
    feature_version: str
    linux_target: str
    macosx_target: str

    def wheel_target(self, platform: str) -> WheelTarget:
        return WheelTarget(
            platform=platform,
            implementation=self.implementation,
            feature_version=self.feature_version,
            linux_target=self.linux_target,
            macosx_target=self.macosx_target,
        )

    def applicable(self, marker: str | None, platforms: Sequence[str] | None = None) -> list[str]:
        among = self.platforms if platforms is None else platforms
        return list(applicable_platforms(marker, among, self.implementation, self.feature_version))


@dataclass(frozen=True)
class MissingWheel:
    pin: str
    platform: str


def narrow(
    resolved: Sequence[ResolvedPackage], target: LayerTarget, lower_locks: Sequence[LayerLock]
) -> tuple[list[LockedPackage], list[MissingWheel]]:
    packages: list[LockedPackage] = []
    missing: list[MissingWheel] = []
    for raw in resolved:
        applicable = target.applicable(raw.marker)
        if not applicable:
            continue
        by_provider: dict[str | None, list[str]] = {}
        for platform in applicable:
            provider = _provider(raw, platform, target, lower_locks)
            by_provider.setdefault(provider, []).append(platform)
        for provider, platforms in by_provider.items():
            wheels = tuple(
                w
                for w in raw.wheels
                if any(target.wheel_target(p).accepts(w.name) for p in platforms)
            )
            packages.append(
                LockedPackage(
                    name=raw.name,
                    version=raw.version,
                    marker=platforms_marker(platforms, target.platforms),
                    wheels=tuple(sorted(wheels, key=lambda w: w.name)),
                    provided_by=provider,
                    index=raw.index,
                )
            )
            if provider is None:
                missing.extend(
                    MissingWheel(f"{raw.name}=={raw.version}", p)
                    for p in platforms
                    if not any(target.wheel_target(p).accepts(w.name) for w in wheels)
                )
    return packages, missing


def _provider(
    raw: ResolvedPackage, platform: str, target: LayerTarget, lower_locks: Sequence[LayerLock]
) -> str | None:
    """The first lower layer (in ``sys.path`` order) that installs this package here."""
    name = canonicalize_name(raw.name)
    for lock in lower_locks:
        for package in lock.own_packages:
            if (
                canonicalize_name(package.name) == name
                and package.version == raw.version
                and target.applicable(package.marker, [platform])
            ):
                return lock.build_name
    return None


def lower_constraints(lower_locks: Sequence[LayerLock]) -> list[str]:
    """Every pin beneath, as constraints: one version per name, except where a lower
    layer itself locked different versions for different platforms."""
    entries: dict[str, set[tuple[str, str | None]]] = {}
    for lock in lower_locks:
        for package in lock.packages:
            entries.setdefault(canonicalize_name(package.name), set()).add(
                (package.version, package.marker)
            )
    constraints = []
    for name, found in sorted(entries.items()):
        versions = {version for version, _ in found}
        if len(versions) == 1:
            constraints.append(f"{name}=={versions.pop()}")
            continue
        for version, marker in sorted(found, key=lambda e: (e[0], e[1] or "")):
            constraints.append(f"{name}=={version} ; {marker}" if marker else f"{name}=={version}")
    return constraints


def missing_wheels_message(
    label: str, missing: Sequence[MissingWheel], platforms: Sequence[str], *, accepted: bool = False
) -> str:
    """What is missing where, and the ``platforms`` list that every package supports."""
    where: dict[str, list[str]] = {}
    for item in missing:
        where.setdefault(item.pin, []).append(item.platform)
    lacking = {item.platform for item in missing}
    remedy = "" if accepted else ", or lock with --accept-missing-wheels"
    working = [p for p in platforms if p not in lacking]
    lines = [f"{label}: no wheel for these packages on these platforms (sdists are never built):"]
    lines.extend(f"  {pin}: {', '.join(where[pin])}" for pin in sorted(where))
    if working:
        listed = ", ".join(f'"{p}"' for p in working)
        lines.append(
            f"  every package has wheels for: platforms = [{listed}] (set that for this layer),"
            f" or pin versions that have wheels{remedy}"
        )
    else:
        lines.append(
            "  no target platform has wheels for every package: pin versions that have wheels"
            f"{remedy}"
        )
    return "\n".join(lines)
