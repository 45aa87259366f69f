"""The values the lock stage hands to later stages: locked packages, layer locks, results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LockedWheel:
    """One wheel of a locked package.

    ``url`` is None for wheels found in a local folder (``local_wheels``): those are
    recorded by ``path`` relative to the lock file and installed by name and hash.

    Only what identifies the wheel is kept. Fields uv adds or drops between releases
    (``size``, ``upload-time``) are not, so a lock's identity never depends on which uv
    release wrote it.
    """

    name: str
    url: str | None
    sha256: str
    path: str | None = None


@dataclass(frozen=True)
class LockedPackage:
    """One package of a layer lock.

    ``marker`` names the layer platforms the package applies to (None: all of them).
    ``provided_by`` is the build name of the lower layer that installs it, or None when
    this layer installs it itself.
    """

    name: str
    version: str
    marker: str | None
    wheels: tuple[LockedWheel, ...]
    provided_by: str | None
    index: str | None = None

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class LayerLock:
    """A layer's valid lock, as read from ``requirements/<build name>/``."""

    build_name: str
    packages: tuple[LockedPackage, ...]
    lock_version: int
    locked_at: str
    requirements_hash: str
    lock_path: Path
    meta_path: Path
    # The layer's platforms and Python feature version the lock was made for.
    platforms: tuple[str, ...] = ()
    python_version: str = ""
    linux_target: str = "2.28"
    macosx_target: str = "13.0"

    @property
    def own_packages(self) -> tuple[LockedPackage, ...]:
        """Packages this layer installs itself (not provided by a lower layer)."""
        return tuple(p for p in self.packages if p.provided_by is None)


@dataclass(frozen=True)
class LockStatus:
    """Whether a layer's committed lock still matches its inputs, and why not."""

    valid: bool
    reason: str
    lock_version: int | None
    locked_at: str | None


@dataclass(frozen=True)
class LockResult:
    """What ``lock_stack`` did for one layer."""

    build_name: str
    changed: bool
    lock_version: int
    skipped: bool
    # Why the layer was (re)locked or left alone; with ``check_only``, why its lock is stale.
    reason: str = ""
    lock_path: Path | None = None
    seconds: float = 0.0
    # ``check_only`` mode: the lock does not fit its inputs.
    stale: bool = False
