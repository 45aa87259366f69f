"""The sys.path order of lower layers is the C3 linearization, as Python orders an MRO."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pytest

from venvlayers.errors import SpecError
from venvlayers.spec import load_stack
from venvlayers.spec.c3 import C3Conflict, linearize

if TYPE_CHECKING:
    from tests.conftest import WriteSpec

RUNTIME = """
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.11"
requirements = []
"""


def spec_for(graph: Mapping[str, Sequence[str]], app_on: Sequence[str]) -> str:
    """Frameworks in ``graph`` order (roots sit on the runtime), and one app on top."""
    text = RUNTIME
    for name, lowers in graph.items():
        lower = f"frameworks = {list(lowers)!r}" if lowers else 'runtime = "rt"'
        text += f'\n[[frameworks]]\nname = "{name}"\nrequirements = []\n{lower}\n'.replace("'", '"')
    text += (
        '\n[[applications]]\nname = "app"\nrequirements = []\nlaunch_module = "m.py"\n'
        + f"frameworks = {list(app_on)!r}\n".replace("'", '"')
    )
    return text


def python_mro(graph: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Build the hierarchy as real classes; each class's MRO names, without ``object``."""
    classes: dict[str, type] = {}
    for name, bases in graph.items():
        classes[name] = type(name, tuple(classes[b] for b in bases) or (object,), {})
    return {
        name: tuple(c.__name__ for c in cls.__mro__ if c is not object)
        for name, cls in classes.items()
    }


def our_orders(graph: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Each name's linearization by :func:`linearize`, built bottom-up as the loader does."""
    orders: dict[str, tuple[str, ...]] = {}
    for name, bases in graph.items():
        orders[name] = (name, *linearize(bases, orders))
    return orders


DIAMOND = {"base": [], "a": ["base"], "b": ["base"]}
# The example hierarchy of the C3 literature (also on Wikipedia's C3 page).
TEXTBOOK = {
    "O": [],
    "A": ["O"],
    "B": ["O"],
    "C": ["O"],
    "D": ["O"],
    "E": ["O"],
    "K1": ["A", "B", "C"],
    "K2": ["D", "B", "E"],
    "K3": ["D", "A"],
}


# -- through the spec loader -----------------------------------------------------------------
def test_diamond_orders_both_sides_before_the_shared_base(write_spec: WriteSpec) -> None:
    stack = load_stack(write_spec(spec_for(DIAMOND, ["a", "b"]), files={"m.py": ""}))
    (app,) = stack.applications
    assert app.frameworks == ("a", "b")
    assert app.framework_order == ("a", "b", "base")
    assert app.lower_layers == ("framework-a", "framework-b", "framework-base", "rt")
    assert app.runtime_name == "rt"


def test_declared_order_decides_between_independent_frameworks(write_spec: WriteSpec) -> None:
    stack = load_stack(write_spec(spec_for(DIAMOND, ["b", "a"]), files={"m.py": ""}))
    assert stack.applications[0].framework_order == ("b", "a", "base")


def test_textbook_hierarchy_matches_python_mro(write_spec: WriteSpec) -> None:
    stack = load_stack(write_spec(spec_for(TEXTBOOK, ["K1", "K2", "K3"]), files={"m.py": ""}))
    expected = python_mro({**TEXTBOOK, "Z": ["K1", "K2", "K3"]})["Z"][1:]
    assert expected == ("K1", "K2", "K3", "D", "A", "B", "C", "E", "O")
    assert stack.applications[0].framework_order == expected
    for framework in stack.frameworks:
        assert framework.framework_order == python_mro(TEXTBOOK)[framework.name][1:]


def test_conflicting_orders_are_an_error_naming_the_layers(write_spec: WriteSpec) -> None:
    graph = {"a": [], "b": [], "x": ["a", "b"], "y": ["b", "a"]}
    with pytest.raises(TypeError, match="consistent method resolution"):
        python_mro({**graph, "app": ["x", "y"]})  # Python refuses the same hierarchy
    with pytest.raises(SpecError) as info:
        load_stack(write_spec(spec_for(graph, ["x", "y"]), files={"m.py": ""}))
    message = str(info.value)
    assert message.startswith("application 'app': 'frameworks': ")
    assert "conflict between 'a' and 'b'" in message


# -- linearize() against Python's own MRO ----------------------------------------------------
HIERARCHIES = {
    "single-chain": {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]},
    "diamond": {**DIAMOND, "top": ["a", "b"]},
    "textbook": {**TEXTBOOK, "Z": ["K1", "K2", "K3"]},
    "independent-roots": {"a": [], "b": [], "c": [], "top": ["c", "a", "b"]},
    "wide-then-narrow": {
        "base": [],
        "l": ["base"],
        "m": ["base"],
        "r": ["base"],
        "lm": ["l", "m"],
        "mr": ["m", "r"],
        "top": ["lm", "mr"],
    },
    "redundant-declared-base": {"base": [], "a": ["base"], "top": ["a", "base"]},
}


@pytest.mark.parametrize("graph", HIERARCHIES.values(), ids=HIERARCHIES.keys())
def test_linearize_matches_python_mro(graph: dict[str, list[str]]) -> None:
    assert our_orders(graph) == python_mro(graph)


@pytest.mark.parametrize(
    ("graph", "declared", "heads"),
    [
        ({"a": [], "b": [], "x": ["a", "b"], "y": ["b", "a"]}, ["x", "y"], ("a", "b")),
        ({"base": [], "a": ["base"]}, ["base", "a"], ("base", "a")),
    ],
    ids=["crossed", "base-before-derived"],
)
def test_linearize_conflicts_where_python_does(
    graph: dict[str, list[str]], declared: list[str], heads: tuple[str, ...]
) -> None:
    with pytest.raises(TypeError):
        python_mro({**graph, "top": declared})
    with pytest.raises(C3Conflict) as info:
        linearize(declared, our_orders(graph))
    assert info.value.layers == heads


def test_linearize_of_nothing_is_empty() -> None:
    assert linearize([], {}) == ()


def test_linearize_agrees_with_python_on_random_hierarchies() -> None:
    # A fixed seed: the same few hundred hierarchies every run, conflicts included.
    rng = random.Random(20240611)
    agreed = conflicts = 0
    for _ in range(300):
        graph: dict[str, list[str]] = {}
        for index in range(rng.randint(2, 9)):
            earlier = list(graph)
            graph[f"n{index}"] = rng.sample(earlier, rng.randint(0, min(3, len(earlier))))
        try:
            expected: dict[str, tuple[str, ...]] | None = python_mro(graph)
        except TypeError:
            expected = None
        try:
            actual: dict[str, tuple[str, ...]] | None = our_orders(graph)
        except C3Conflict:
            actual = None
        assert actual == expected, graph
        agreed += 1
        conflicts += expected is None
    # Both outcomes were exercised, so agreement on conflicts is checked too.
    assert agreed == 300 and 0 < conflicts < 300
