"""Resolve one layer with uv and check its wheels; explain failures in the layer's terms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvlayers.errors import LockError
from venvlayers.lock.model import LayerLock, LockedPackage
from venvlayers.lock.narrow import (
    LayerTarget,
    MissingWheel,
    lower_constraints,
    missing_wheels_message,
    narrow,
)
from venvlayers.lock.resolve import ResolvedPackage, UvLockFailed, resolve
from venvlayers.lock.uvproject import make_project
from venvlayers.spec.model import LayerSpec, StackSpec


@dataclass(frozen=True)
class ResolveRequest:
    stack: StackSpec
    layer: LayerSpec
    requirements: Sequence[str]
    target: LayerTarget
    lowers: Sequence[LayerLock]
    preferences: Sequence[LockedPackage]
    lock_folder: Path
    local_wheels: Path | None
    no_index: bool

    def attempt(
        self, *, wheels_only: bool, platforms: Sequence[str] | None = None
    ) -> list[ResolvedPackage]:
        project = make_project(
            self.stack, self.layer, self.requirements, lower_constraints(self.lowers),
            preferences=self.preferences, local_wheels=self.local_wheels,
            no_index=self.no_index, wheels_only=wheels_only, platforms=platforms,
        )  # fmt: skip
        return resolve(project, label=self.layer.label, lock_folder=self.lock_folder)


def resolve_layer(
    request: ResolveRequest, *, allow_missing: bool, report: Callable[[str], None]
) -> list[LockedPackage]:
    """uv's lock of the layer, narrowed to its platforms, with every wheel gap reported.

    uv first locks wheels only, so it picks versions that have a wheel everywhere. With
    ``allow_missing`` it may also use sdists' metadata, and the gaps become warnings.
    """
    layer, lowers = request.layer, request.lowers
    try:
        resolved = request.attempt(wheels_only=not allow_missing)
    except UvLockFailed as failure:
        # uv's whole text: a pin can be deep in a chain the one-line summary leaves out.
        hint = _lower_pins_hint(f"{failure}\n{failure.details}", lowers)
        uv_error = LockError(f"{failure}{hint}")
        if not failure.about_wheels or allow_missing:
            raise uv_error from None
        missing = _diagnose_missing_wheels(request)
        if not missing:
            raise uv_error from None
        raise LockError(missing_wheels_message(layer.label, missing, layer.platforms)) from None
    packages, missing = narrow(resolved, request.target, lowers)
    if missing:
        message = missing_wheels_message(
            layer.label, missing, layer.platforms, accepted=allow_missing
        )
        if not allow_missing:
            raise LockError(message)
        report(f"warning: {message}")
    return packages


def _diagnose_missing_wheels(request: ResolveRequest) -> list[MissingWheel]:
    """What lacks wheels where, once uv said that some environment lacks wheels."""
    target, lowers = request.target, request.lowers
    # Allowing sdists' metadata gives the whole picture, when every package has an sdist.
    try:
        return narrow(request.attempt(wheels_only=False), target, lowers)[1]
    except LockError:
        pass
    # Otherwise lock each platform alone: the packages of those that work, checked
    # against those that do not.
    found: dict[tuple[str, str], ResolvedPackage] = {}
    failing = []
    for platform in target.platforms:
        try:
            packages = request.attempt(wheels_only=True, platforms=[platform])
        except LockError:
            failing.append(platform)
            continue
        found.update({(p.name, p.version): p for p in packages})
    return [
        MissingWheel(f"{name}=={version}", platform)
        for (name, version), package in sorted(found.items())
        for platform in failing
        if not any(target.wheel_target(platform).accepts(w.name) for w in package.wheels)
    ]


def _lower_pins_hint(message: str, lowers: Sequence[LayerLock]) -> str:
    """Name the lower layers whose pins appear in uv's explanation of a conflict."""
    pins = sorted(
        {
            f"{package.pin} (from {lock.build_name})"
            for lock in lowers
            for package in lock.own_packages
            if package.pin in message
        }
    )
    if not pins:
        return ""
    return "\n  pinned by lower layers: " + ", ".join(pins)
