"""The user cache of prepared runtimes: one folder per runtime, populated atomically.

Layout under ``<cache>/runtimes/``::

    cpython-3.11.7-local-linux-x86_64-1a2b3c4d/
        runtime/                   the relocatable runtime (bin/, lib/, include/ ...)
        venvlayers-runtime.json    source, origin, exact version (written last)

An entry is prepared in a temporary folder beside it and renamed into place, so a reader
never sees a half-made runtime, and a failed preparation leaves nothing behind.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from venvlayers._fs import staged_dir, write_json
from venvlayers.environment import current as current_environment
from venvlayers.runtime._base import RuntimeCandidate
from venvlayers.runtime.pbs_archives import find_interpreter
from venvlayers.runtime.versions import matches, version_key
from venvlayers.spec.model import PythonImplementation

ENTRY_METADATA = "venvlayers-runtime.json"
RUNTIME_DIR = "runtime"


@dataclass(frozen=True)
class PreparedRuntime:
    """A complete relocatable runtime in the cache, ready to copy into a runtime layer."""

    root: Path
    implementation: str
    version: str
    source: str
    origin: str
    python: str
    # How the source found it ("pyenv", "download", ...); empty for entries of older releases.
    found_by: str = ""


def default_cache_dir() -> Path:
    """The cache folder this process's environment names (see :mod:`venvlayers.environment`)."""
    return current_environment().cache_dir


def host_platform() -> str:
    machine = platform.machine().lower() or "unknown"
    return f"{sys.platform}-{machine}"


class RuntimeCache:
    """Prepared runtimes under ``<cache_dir>/runtimes``."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.folder = cache_dir / "runtimes"

    @property
    def downloads(self) -> Path:
        """Where downloaded archives are kept, so a re-preparation need not fetch them again."""
        return self.cache_dir / "downloads"

    def key(self, candidate: RuntimeCandidate, source: str) -> str:
        digest = hashlib.sha256(candidate.identity.encode()).hexdigest()[:8]
        return f"{candidate.implementation}-{candidate.version}-{source}-{host_platform()}-{digest}"

    def get(self, candidate: RuntimeCandidate, source: str) -> PreparedRuntime | None:
        """The entry prepared from exactly ``candidate``, if it is complete."""
        return self._load(self.folder / self.key(candidate, source))

    def newest(self, request: PythonImplementation) -> PreparedRuntime | None:
        """The newest complete entry matching ``request``, from any source."""
        if not self.folder.is_dir():
            return None
        suffix = f"-{host_platform()}-"
        best: PreparedRuntime | None = None
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith(".") or suffix not in entry.name:
                continue
            prepared = self._load(entry)
            if prepared is None or not matches(request, prepared.implementation, prepared.version):
                continue
            if best is None or version_key(prepared.version) > version_key(best.version):
                best = prepared
        return best

    def populate(
        self, candidate: RuntimeCandidate, source: str, fill: Callable[[Path], None]
    ) -> PreparedRuntime:
        """Prepare an entry with ``fill(runtime_dir)`` in a temporary folder, then rename it.

        When another process finished the same entry first, its entry is kept and ours dropped.
        """
        final = self.folder / self.key(candidate, source)
        if final.exists() and self._load(final) is None:
            # Left incomplete by an older version or by hand: not trusted.
            shutil.rmtree(final)
        with staged_dir(final, keep_existing=True) as staging:
            runtime = staging / RUNTIME_DIR
            runtime.mkdir()
            fill(runtime)
            python = find_interpreter(runtime)
            if python is None:
                raise FileNotFoundError(f"no interpreter in prepared runtime {runtime}")
            write_json(staging / ENTRY_METADATA, _metadata(candidate, source, python))
        prepared = self._load(final)
        assert prepared is not None
        return prepared

    def _load(self, entry: Path) -> PreparedRuntime | None:
        try:
            data = json.loads((entry / ENTRY_METADATA).read_text(encoding="utf-8"))
            prepared = PreparedRuntime(
                root=entry / RUNTIME_DIR,
                implementation=str(data["implementation"]),
                version=str(data["version"]),
                source=str(data["source"]),
                origin=str(data["origin"]),
                python=str(data["python"]),
                found_by=str(data.get("found_by") or ""),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return prepared if (prepared.root / prepared.python).exists() else None


def _metadata(candidate: RuntimeCandidate, source: str, python: str) -> dict[str, object]:
    return {
        "implementation": candidate.implementation,
        "version": candidate.version,
        "source": source,
        "origin": candidate.origin,
        "found_by": candidate.found_by,
        "identity": candidate.identity,
        "sha256": candidate.sha256,
        "python": python,
        "platform": host_platform(),
        "prepared_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
