"""``uv.lock``: the pins of everything the project's members need, with their markers.

A uv lock is universal: a package's marker is the ``or`` of the paths that lead to it
from the workspace members (each path ``and``-ing the markers on its edges).
Development groups are left out.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from venvlayers.lock.importers._common import fail, pin, read_toml

_MEMBER_SOURCES = ("virtual", "editable")
# Beyond this many distinct paths to one package, require it everywhere: a superset
# of where it is needed is harmless, an ever-growing marker is not.
_MAX_MARKER_PATHS = 8

_Key = tuple[str, str]


def read(path: Path) -> list[str]:
    packages = read_toml(path).get("package", [])
    if not isinstance(packages, list) or not all(isinstance(p, dict) for p in packages):
        fail(path, "'package' must be an array of tables")
    graph = _Graph(path, packages)
    markers = graph.markers()
    pins = []
    for key in sorted(markers):
        package = graph.by_key[key]
        if _is_member(package):
            continue
        if "registry" not in package.get("source", {}):
            fail(path, f"{key[0]}: only index packages can be locked (source: {package['source']})")
        alternatives = markers[key]
        pins.append(pin(key[0], key[1], _join(alternatives)))
    return pins


class _Graph:
    def __init__(self, path: Path, packages: list[dict[str, Any]]) -> None:
        self.path = path
        self.by_key: dict[_Key, dict[str, Any]] = {}
        self.by_name: dict[str, list[_Key]] = {}
        for package in packages:
            name, version = package.get("name"), package.get("version", "")
            if not isinstance(name, str):
                fail(path, "a [[package]] entry has no name")
            key = (name, str(version))
            self.by_key[key] = package
            self.by_name.setdefault(name, []).append(key)

    def markers(self) -> dict[_Key, set[str | None]]:
        """Marker alternatives per reachable package (``{None}``: needed everywhere)."""
        reached: dict[_Key, set[str | None]] = {}
        extras: dict[_Key, set[str]] = {}
        queue: deque[_Key] = deque()
        for key, package in self.by_key.items():
            if _is_member(package):
                reached[key] = {None}
                queue.append(key)
        if not queue:
            fail(self.path, "no workspace member (virtual or editable package) to start from")
        while queue:
            key = queue.popleft()
            for edge in self._edges(key, extras.get(key, set())):
                child = self._resolve(edge)
                new = {_and(alt, edge.get("marker")) for alt in reached[key]}
                old = reached.get(child, set())
                merged = _collapse(old | new)
                wanted_extras = set(edge.get("extra", []))
                if merged != old or not wanted_extras <= extras.get(child, set()):
                    reached[child] = merged
                    extras.setdefault(child, set()).update(wanted_extras)
                    queue.append(child)
        return reached

    def _edges(self, key: _Key, extras: set[str]) -> list[dict[str, Any]]:
        package = self.by_key[key]
        edges = list(package.get("dependencies", []))
        optional = package.get("optional-dependencies", {})
        for extra in sorted(extras):
            edges.extend(optional.get(extra, []))
        return edges

    def _resolve(self, edge: dict[str, Any]) -> _Key:
        name = edge.get("name")
        candidates = self.by_name.get(name, []) if isinstance(name, str) else []
        if "version" in edge:
            candidates = [k for k in candidates if k[1] == edge["version"]]
        if len(candidates) != 1:
            fail(self.path, f"dependency {name!r} does not name exactly one [[package]]")
        return candidates[0]


def _is_member(package: dict[str, Any]) -> bool:
    source = package.get("source", {})
    return isinstance(source, dict) and any(kind in source for kind in _MEMBER_SOURCES)


def _and(left: str | None, right: str | None) -> str | None:
    if left is None:
        return right
    if right is None:
        return left
    return f"({left}) and ({right})"


def _collapse(alternatives: set[str | None]) -> set[str | None]:
    if None in alternatives or len(alternatives) > _MAX_MARKER_PATHS:
        return {None}
    return alternatives


def _join(alternatives: set[str | None]) -> str | None:
    if None in alternatives:
        return None
    texts = sorted(a for a in alternatives if a is not None)
    return texts[0] if len(texts) == 1 else " or ".join(f"({t})" for t in texts)
