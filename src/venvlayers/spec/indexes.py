"""Per-layer package index selection: ``package_indexes``, ``index_overrides``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class IndexConflict(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


def effective_indexes(
    *,
    inherited: Sequence[tuple[str, Mapping[str, str]]],
    own: Mapping[str, str],
    overrides: Mapping[str, str],
) -> dict[str, str]:
    """Combine lower layers' index choices with this layer's own.

    ``inherited`` holds ``(lower layer label, its effective mapping)`` in ``sys.path`` order.
    An inherited index renamed by ``overrides`` takes its new name. Two different indexes
    for one distribution are an :class:`IndexConflict` whose message gives the
    ``index_overrides`` line that would accept the combination.
    """
    chosen: dict[str, tuple[str, str]] = {}
    needed: dict[str, str] = dict(overrides)
    clashes: list[str] = []
    for source, mapping in inherited:
        for dist, index in mapping.items():
            index = overrides.get(index, index)
            if dist not in chosen:
                chosen[dist] = (index, source)
                continue
            first_index, first_source = chosen[dist]
            if index != first_index:
                target = own.get(dist, first_index)
                for candidate in (index, first_index):
                    if candidate != target:
                        needed[candidate] = target
                clashes.append(
                    f"{dist!r} comes from index {first_index!r} in {first_source}"
                    f" and from {index!r} in {source}"
                )
    for dist, index in own.items():
        if dist in chosen and chosen[dist][0] != index:
            inherited_index, source = chosen[dist]
            needed[inherited_index] = index
            clashes.append(
                f"{dist!r} uses index {index!r} here but {inherited_index!r} in {source}"
            )
    if clashes:
        raise IndexConflict(
            f"{'; '.join(clashes)}; to accept this, add: {format_overrides_line(needed)}"
        )
    result = {dist: index for dist, (index, _) in chosen.items()}
    result.update(own)
    return result


def format_overrides_line(overrides: Mapping[str, str]) -> str:
    """The TOML line ``index_overrides = {a = "b"}`` for ``overrides``."""
    parts = []
    for old, new in sorted(overrides.items()):
        key = old if _BARE_KEY.match(old) else f'"{old}"'
        parts.append(f'{key} = "{new}"')
    return "index_overrides = {" + ", ".join(parts) + "}"
