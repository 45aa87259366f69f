"""Per-layer package index selection: ``package_indexes``, ``index_overrides``."""

from __future__ import annotations

import json
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
    """Combine the lower layers' index choices with this layer's own.

    ``inherited`` holds ``(lower layer label, its effective mapping)`` for the layers this
    one declares, in ``sys.path`` order; each mapping already reflects that layer's own
    ``index_overrides``, so a conflict settled beneath is not reported again above it.
    An inherited index renamed by ``overrides`` takes its new name. Two different indexes
    for one distribution are an :class:`IndexConflict` whose message gives the
    ``index_overrides`` line that would accept the combination, when one exists.
    """
    result, clashes, needed = _combine(inherited, own, overrides)
    if not clashes:
        return result
    # Renaming an index affects every distribution that uses it, so a rename that settles
    # one clash may open another: only offer a line that has been checked to load.
    candidate = needed
    for _ in range(len(needed) + len(own) + 2):
        _, remaining, more = _combine(inherited, own, candidate)
        if not remaining:
            advice = (
                f"to accept this, add: {format_overrides_line(candidate)}"
                if candidate
                else "to accept this, remove index_overrides"
            )
            break
        if more == candidate:
            advice = "no index_overrides line can accept this; make package_indexes agree"
            break
        candidate = more
    else:
        advice = "no index_overrides line can accept this; make package_indexes agree"
    raise IndexConflict(f"{'; '.join(clashes)}; {advice}")


def _combine(
    inherited: Sequence[tuple[str, Mapping[str, str]]],
    own: Mapping[str, str],
    overrides: Mapping[str, str],
) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """The merged mapping, the clashes found, and the overrides that would settle them."""
    # dist -> (index after overrides, index as the lower layer names it, lower layer label)
    chosen: dict[str, tuple[str, str, str]] = {}
    needed: dict[str, str] = dict(overrides)
    clashes: list[str] = []

    def rename(original: str, target: str) -> None:
        if original == target:
            needed.pop(original, None)
        else:
            needed[original] = target

    for source, mapping in inherited:
        for dist, original in mapping.items():
            index = overrides.get(original, original)
            if dist not in chosen:
                chosen[dist] = (index, original, source)
                continue
            first_index, first_original, first_source = chosen[dist]
            if index != first_index:
                target = own.get(dist, first_index)
                rename(original, target)
                rename(first_original, target)
                clashes.append(
                    f"{dist!r} comes from index {first_index!r} in {first_source}"
                    f" and from {index!r} in {source}"
                )
    for dist, index in own.items():
        if dist in chosen and chosen[dist][0] != index:
            inherited_index, original, source = chosen[dist]
            rename(original, index)
            clashes.append(
                f"{dist!r} uses index {index!r} here but {inherited_index!r} in {source}"
            )
    result = {dist: index for dist, (index, _, _) in chosen.items()}
    result.update(own)
    return result, clashes, needed


def format_overrides_line(overrides: Mapping[str, str]) -> str:
    """The TOML line ``index_overrides = {a = "b"}`` for ``overrides``."""
    parts = []
    for old, new in sorted(overrides.items()):
        key = old if _BARE_KEY.match(old) else _toml_string(old)
        parts.append(f"{key} = {_toml_string(new)}")
    return "index_overrides = {" + ", ".join(parts) + "}"


def _toml_string(text: str) -> str:
    # A JSON string without ASCII escaping is also a valid TOML basic string.
    return json.dumps(text, ensure_ascii=False)
