"""What every runtime provider has: find a candidate cheaply, then materialize it."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime.versions import newest, summarize
from venvlayers.spec.model import PythonImplementation

Report = Callable[[str], None]


class NoMatchingVersion(RuntimeProviderError):
    """A source works but offers no version matching the request."""


@dataclass(frozen=True)
class RuntimeCandidate:
    """One runtime a source can provide, found without doing the expensive work yet."""

    implementation: str
    version: str
    # What a user recognises: interpreter path, archive URL or archive path.
    origin: str
    # How it was found: "pyenv", "uv", "PATH", "explicit path", "mirror folder", "download"...
    found_by: str
    # Distinguishes two runtimes of one version from one source (hashed into the cache key).
    identity: str
    sha256: str | None = None


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may use beyond the request: settings and the user cache."""

    source_path: str | None
    downloads_dir: Path
    report: Report
    # A mirror of python-build-standalone archives from the environment (URL or folder).
    mirror: str | None = None


class RuntimeProvider(abc.ABC):
    """A source of runtimes. Subclasses are registered in :data:`venvlayers.runtime.PROVIDERS`."""

    source: ClassVar[str]

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """How messages name this source, e.g. ``local interpreters`` or ``mirror /srv/pbs``."""

    @abc.abstractmethod
    def candidates(
        self, implementation: str, feature_version: str | None = None
    ) -> Sequence[RuntimeCandidate]:
        """What this source offers for ``implementation``, in order of preference.

        ``feature_version`` (``X.Y``) lets a source skip work for other versions; it may
        still return them. Without it, everything is listed (for error messages).
        """

    @abc.abstractmethod
    def materialize(self, candidate: RuntimeCandidate, dest: Path) -> None:
        """Fill the empty folder ``dest`` with a complete relocatable runtime."""

    def searched(self) -> str:
        """Where the source looked, for the error when it found nothing at all."""
        return ""

    def find(self, request: PythonImplementation) -> RuntimeCandidate:
        """The newest offer matching ``request``; :class:`NoMatchingVersion` lists the offers."""
        offers = self.candidates(request.implementation, request.feature_version)
        best = newest(
            request,
            offers,
            implementation_of=lambda c: c.implementation,
            version_of=lambda c: c.version,
        )
        if best is None:
            offers = self.candidates(request.implementation)
            where = self.searched() if not offers else ""
            raise NoMatchingVersion(
                f"{request}: {self.description}: no match (available: {self.offers_text(offers)}"
                + (f"; searched {where})" if where else ")")
            )
        return best

    @staticmethod
    def offers_text(offers: Sequence[RuntimeCandidate]) -> str:
        if not offers:
            return "nothing"
        by_finder: dict[str, list[str]] = {}
        for offer in offers:
            by_finder.setdefault(offer.found_by, []).append(offer.version)
        return "; ".join(
            f"{summarize(versions)} ({finder})" for finder, versions in by_finder.items()
        )
