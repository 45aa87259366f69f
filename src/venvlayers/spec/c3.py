"""C3 linearization of declared frameworks (as Python computes an MRO)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class C3Conflict(Exception):
    """No consistent order exists; ``layers`` are the heads that could not be placed."""

    def __init__(self, layers: Sequence[str]) -> None:
        super().__init__(", ".join(layers))
        self.layers = tuple(layers)


def linearize(declared: Sequence[str], orders: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Merge the linearizations of ``declared`` with ``declared`` itself.

    ``orders[name]`` is the known linearization of ``name``, starting with ``name``.
    The result is the order of the declared layers and everything beneath them.
    """
    sequences = [list(orders[name]) for name in declared] + [list(declared)]
    result: list[str] = []
    while any(sequences):
        sequences = [seq for seq in sequences if seq]
        for seq in sequences:
            head = seq[0]
            if not any(head in other[1:] for other in sequences):
                break
        else:
            raise C3Conflict(list(dict.fromkeys(seq[0] for seq in sequences)))
        result.append(head)
        for seq in sequences:
            if seq and seq[0] == head:
                del seq[0]
    return tuple(result)
