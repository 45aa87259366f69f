"""Whether some runtime source can provide a runtime layer's version, known without a download.

``lock`` runs this check first, so a version no source offers (``cpython@3.12.99``) stops the
command before anything is resolved, instead of at the end of a build. Only what is on this
host is consulted: the release index bundled with pbs-installer, folders of archives, the
runtime cache and the local interpreters.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvlayers.environment import Environment
from venvlayers.environment import current as current_environment
from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime._base import ProviderContext, RuntimeProvider
from venvlayers.runtime.archive_source import ArchiveProvider
from venvlayers.runtime.cache import RuntimeCache
from venvlayers.runtime.local import LocalProvider
from venvlayers.runtime.pbs_archives import parse_archive_name
from venvlayers.runtime.prepare import PROVIDERS, _provider_for_path, resolve_source
from venvlayers.runtime.standalone import StandaloneProvider
from venvlayers.runtime.versions import matches, version_key
from venvlayers.spec.model import LayerSpec, PythonImplementation, RuntimeSpec

log = logging.getLogger(__name__)

_DISPLAY = {"cpython": "CPython", "pypy": "PyPy"}
# Versions named per source in the message: enough to choose from, short enough for one line.
_NEAREST = 2


@dataclass(frozen=True)
class _Offers:
    """What one source offers: ``where`` names it in the message."""

    where: str
    versions: tuple[tuple[str, str], ...]  # (version, found by)


def runtime_problem(
    layer: RuntimeSpec, *, cache_dir: Path | None = None, environment: Environment | None = None
) -> str | None:
    """Why no runtime source in force for ``layer`` can provide its version, or None.

    One line naming the layer, the version, the nearest versions on offer and what to do.
    A source that cannot be listed on this host (a missing archive folder) is not judged:
    the build reports it, with the host it runs on.
    """
    request = layer.python_implementation
    environment = environment or current_environment()
    source = resolve_source(layer.source, environment=environment)
    offers: list[_Offers] = []
    try:
        listers = _listers(layer, source, cache_dir or environment.cache_dir, environment)
    except RuntimeProviderError as exc:
        log.info("runtime %s: not checked: %s", request, exc)
        return None
    for where, lister in listers:
        try:
            found = lister(request)
        except RuntimeProviderError as exc:
            log.info("runtime %s: %s not checked: %s", request, where, exc)
            if source == "auto":
                # The build skips a source that fails the same way and tries the next one.
                continue
            return None
        if any(matches(request, request.implementation, v) for v, _ in found):
            return None
        offers.append(_Offers(where, tuple(found)))
    return _message(layer, source, offers)


def check_runtime_available(
    layer: RuntimeSpec, *, cache_dir: Path | None = None, environment: Environment | None = None
) -> None:
    """Raise :class:`RuntimeProviderError` when no runtime source can provide ``layer``."""
    problem = runtime_problem(layer, cache_dir=cache_dir, environment=environment)
    if problem is not None:
        raise RuntimeProviderError(problem)


def check_runtime_versions(
    layers: Iterable[LayerSpec],
    *,
    cache_dir: Path | None = None,
    environment: Environment | None = None,
) -> None:
    """Check every enabled runtime layer among ``layers``; the first problem is raised."""
    environment = environment or current_environment()
    for layer in layers:
        if isinstance(layer, RuntimeSpec) and layer.enabled:
            check_runtime_available(layer, cache_dir=cache_dir, environment=environment)


Lister = Callable[[PythonImplementation], list[tuple[str, str]]]


def _listers(
    layer: RuntimeSpec, source: str, cache_dir: Path, environment: Environment
) -> list[tuple[str, Lister]]:
    """The sources to consult, cheapest first, so the usual case never runs an interpreter."""
    context = ProviderContext(
        source_path=layer.source_path,
        downloads_dir=Path(os.devnull),
        report=lambda _m: None,
        mirror=environment.pbs_mirror,
    )
    provider: RuntimeProvider
    if source == "archive":
        return [("the runtime archive", lambda _r: _archive_offer(layer.source_path))]
    if source == "auto" and layer.source_path:
        # ``auto`` with source_path uses exactly what it names, as the build does.
        provider = _provider_for_path(context)
        if isinstance(provider, ArchiveProvider):
            return [("the runtime archive", lambda _r: _archive_offer(layer.source_path))]
        return [(_where(provider), _from(provider))]
    if source != "auto":
        provider = PROVIDERS[source](context)
        return [(_where(provider), _from(provider))]
    listers: list[tuple[str, Lister]] = [
        ("python-build-standalone", _from(StandaloneProvider(context, mirror=None)))
    ]
    if context.mirror:
        mirror = StandaloneProvider(context)
        if mirror.mirror_folder is not None:
            listers.append((_where(mirror), _from(mirror)))
    listers.append(("the runtime cache", lambda r: _cached(r, cache_dir)))
    listers.append(("local", _from(LocalProvider(context))))
    return listers


def _from(provider: RuntimeProvider) -> Lister:
    def lister(request: PythonImplementation) -> list[tuple[str, str]]:
        offers = provider.candidates(request.implementation)
        return [(c.version, c.found_by) for c in offers]

    return lister


def _where(provider: RuntimeProvider) -> str:
    if isinstance(provider, LocalProvider):
        return "local"
    if isinstance(provider, StandaloneProvider) and provider.mirror_folder is not None:
        return f"the archive folder {provider.mirror_folder}"
    return "python-build-standalone"


def _archive_offer(path: str | None) -> list[tuple[str, str]]:
    # The file name says the version; hashing the archive is left to the build.
    name = parse_archive_name(Path(path or "").name)
    if name is None:
        raise RuntimeProviderError(f"{path}: not a python-build-standalone archive name")
    return [(name.version, "archive file")]


def _cached(request: PythonImplementation, cache_dir: Path) -> list[tuple[str, str]]:
    cache = RuntimeCache(cache_dir)
    prepared = cache.newest(request)
    return [(prepared.version, "cache")] if prepared is not None else []


def nearest(
    request: PythonImplementation, versions: Sequence[str], limit: int = _NEAREST
) -> list[str]:
    """The offered versions closest to ``request``, closest first.

    For ``X.Y.Z``: releases of the same ``X.Y`` by distance (newer first on a tie). When
    ``X.Y`` is not offered at all: the newest release of the nearest feature versions.
    """
    wanted = version_key(request.version)
    newest_per_feature: dict[tuple[int, ...], tuple[int, ...]] = {}
    for version in versions:
        key = version_key(version)
        feature = key[:2]
        if feature not in newest_per_feature or key > newest_per_feature[feature]:
            newest_per_feature[feature] = key
    same_feature = sorted(
        {version_key(v) for v in versions if version_key(v)[:2] == wanted[:2]},
        key=lambda k: (abs(k[2] - wanted[2]) if len(wanted) > 2 else 0, [-p for p in k]),
    )
    others = sorted(
        (k for f, k in newest_per_feature.items() if f != wanted[:2]),
        key=lambda k: (abs(k[0] - wanted[0]), abs(k[1] - wanted[1]), [-p for p in k]),
    )
    # Another feature version is only worth naming when this one is not offered at all.
    chosen = same_feature or others
    return [".".join(map(str, k)) for k in chosen[:limit]]


def _message(layer: RuntimeSpec, source: str, offers: Sequence[_Offers]) -> str:
    request = layer.python_implementation
    impl = _DISPLAY.get(request.implementation, request.implementation)
    if source == "auto":
        claim = f"is not a {impl} release any runtime source provides"
    elif source == "local":
        claim = f"matches no local {impl} interpreter"
    elif source == "archive":
        claim = "is not the version of the runtime archive"
    else:
        claim = f"is not a {impl} release {offers[0].where if offers else source} provides"
    shown = [_nearest_text(request, o) for o in offers if o.versions]
    details = [f"nearest: {'; '.join(shown)}" if shown else "none found"]
    if source != "auto":
        details.insert(0, f"runtime source '{source}'")
    return (
        f"{layer.label}: python_implementation '{request}' {claim} ({', '.join(details)});"
        f" {_advice(request, source, offers)}"
    )


def _nearest_text(request: PythonImplementation, offers: _Offers) -> str:
    versions = nearest(request, [v for v, _ in offers.versions])
    if offers.where != "local":
        return f"{offers.where} {', '.join(versions)}"
    # Local interpreters are named by their finder (pyenv, uv, PATH): where to look for them.
    finder = {v: by for v, by in reversed(offers.versions)}
    by_finder: dict[str, list[str]] = {}
    for version in versions:
        by_finder.setdefault(finder[version], []).append(version)
    return "; ".join(f"{by} {', '.join(found)}" for by, found in by_finder.items())


def _advice(request: PythonImplementation, source: str, offers: Sequence[_Offers]) -> str:
    feature = request.feature_version
    offered = {v for o in offers for v, _ in o.versions}
    if request.is_exact and any(v.startswith(f"{feature}.") for v in offered):
        advice = f"use one of these or '{request.implementation}@{feature}' (the newest)"
    elif offered:
        advice = "use one of these versions"
    else:
        advice = "use a version this host can provide"
    if source == "local":
        return f"{advice}, install that version, or choose another runtime source"
    if source != "auto":
        return f"{advice}, or choose another runtime source"
    return advice
