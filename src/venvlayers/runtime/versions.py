"""Matching a requested ``cpython@X.Y[.Z]`` against the exact versions a source offers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from venvlayers.spec.model import PythonImplementation

T = TypeVar("T")


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for ``X.Y.Z`` strings (numeric, so 3.11.10 sorts after 3.11.9)."""
    return tuple(int(part) for part in version.split("."))


def matches(request: PythonImplementation, implementation: str, version: str) -> bool:
    """Whether an exact ``version`` of ``implementation`` satisfies ``request``.

    ``cpython@3.11`` matches every 3.11.Z; ``cpython@3.11.7`` matches only 3.11.7.
    """
    if implementation != request.implementation:
        return False
    wanted = version_key(request.version)
    return version_key(version)[: len(wanted)] == wanted


def newest(
    request: PythonImplementation,
    offers: Iterable[T],
    *,
    implementation_of: Callable[[T], str],
    version_of: Callable[[T], str],
) -> T | None:
    """The offer with the highest matching version; on a tie, the earliest (preferred) one."""
    best: T | None = None
    for offer in offers:
        if not matches(request, implementation_of(offer), version_of(offer)):
            continue
        if best is None or version_key(version_of(offer)) > version_key(version_of(best)):
            best = offer
    return best


def summarize(versions: Sequence[str], *, limit: int = 10) -> str:
    """``3.10.13, 3.11.7, 3.12.1``: distinct versions, ascending, the newest ``limit`` kept.

    Long lists (a release index) keep only the newest maintenance release per ``X.Y``.
    """
    distinct = sorted(set(versions), key=version_key)
    if not distinct:
        return "nothing"
    if len(distinct) > limit:
        per_feature: dict[str, str] = {}
        for version in distinct:
            per_feature[".".join(version.split(".")[:2])] = version
        distinct = list(per_feature.values())
    shown = distinct[-limit:]
    prefix = "..., " if len(shown) < len(distinct) else ""
    return prefix + ", ".join(shown)
