"""uv's explanation of a failed lock, reduced to the package and the reason.

uv's text changes shape between releases: 0.9 draws a frame (a cross, ``│``, ``╰─▶``) and
wraps long lines; later releases write ``error:`` / ``cause:`` lines. Both are read as
statements (a prefix starts one, any other line continues it), and anything this module
does not recognise falls back to uv's first meaningful statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CROSS = "\u00d7"  # uv 0.9's first line of an error
_FRAME = f"{_CROSS}│╰─▶ "
_KINDS = (
    ("error:", "error"),
    (_CROSS, "error"),
    ("caused by:", "cause"),
    ("cause:", "cause"),
    ("╰─▶", "cause"),
    ("hint:", "hint"),
    ("help:", "hint"),
)
_NETWORK = (
    "failed to fetch",
    "error sending request",
    "request failed after",
    "dns error",
    "tcp connect error",
    "connection refused",
    "timed out",
    "network is unreachable",
)
_URL = re.compile(r"https?://[^\s`'\")]+")
# uv annotates requirements with the fork they apply to: numpy{python_full_version >= '3.12'}
_FORK_MARKER = re.compile(r"\{[^}]*\}")
# uv's note on the interpreter it ran, which says nothing about the failure.
_USING = re.compile(r"^Using (CPython|PyPy|Python) \d")
_SPLIT = re.compile(r" for split \(markers: [^)]*\)")


@dataclass(frozen=True)
class Statement:
    kind: str  # "error", "cause" or "hint"
    text: str


def statements(output: str) -> list[Statement]:
    """uv's output as statements, with wrapped lines joined and frames removed."""
    found: list[Statement] = []
    kind, parts = "", list[str]()
    for raw in output.splitlines():
        line = raw.strip()
        started = next(((p, k) for p, k in _KINDS if line.lower().startswith(p)), None)
        line = line.lstrip(_FRAME).strip() if started is None else line
        if not line:
            # A blank line ends a statement (uv 0.9 puts one before its hints).
            if parts:
                found.append(Statement(kind, " ".join(parts)))
            kind, parts = "", []
            continue
        if _USING.match(line):
            continue
        if started is not None:
            if parts:
                found.append(Statement(kind, " ".join(parts)))
            prefix, kind = started
            parts = [line[len(prefix) :].lstrip(_FRAME).strip()]
        elif parts:
            parts.append(line)
        else:
            kind, parts = "error", [line]
    if parts:
        found.append(Statement(kind, " ".join(parts)))
    return [s for s in found if s.text]


def without_false_hints(found: list[Statement], *, python_matches: bool) -> list[Statement]:
    """uv's statements less the hints that are not true of a layer.

    venvlayers sets ``environments`` itself, so advice to narrow them does not apply; and
    when uv ran another Python than the layer's X.Y, its hints about "the active Python
    version" speak of that other Python.
    """

    def false(statement: Statement) -> bool:
        if statement.kind != "hint":
            return False
        if "tool.uv.environments" in statement.text:
            return True
        return not python_matches and "active Python version" in statement.text

    return [s for s in found if not false(s)]


def render(found: list[Statement]) -> str:
    """The statements as readable text (for ``-v``)."""
    return "\n".join(f"{s.kind}: {s.text}" for s in found)


def summarize(found: list[Statement]) -> str:
    """The package and the reason, in one line."""
    text = " ".join(s.text for s in found)
    if any(sign in text.lower() for sign in _NETWORK):
        return _network(found, text)
    for statement in found:
        if statement.kind == "cause" and statement.text.startswith("Because "):
            return _resolution(statement.text)
    first = next((s for s in found if s.kind == "cause"), None) or (found[0] if found else None)
    if first is None:
        return "uv gave no explanation"
    return _SPLIT.sub("", first.text)


def _network(found: list[Statement], text: str) -> str:
    url = _URL.search(text)
    causes = [s.text for s in found if s.kind == "cause"] or [found[0].text]
    location = url.group(0).rstrip(".,:;") if url else ""
    package = re.search(r"/simple/([^/]+)/?$", location)
    where = (f" for {package[1]}" if package else "") + (f" ({location})" if location else "")
    return (
        f"cannot reach the package index{where}: {causes[-1]}; check the network and the"
        " indexes in [tool.uv], or lock offline with --local-wheels DIR --no-index"
    )


def _resolution(because: str) -> str:
    clause = because.removeprefix("Because ")
    clause = clause.split(", we can conclude", 1)[0]
    clause = _FORK_MARKER.sub("", clause).replace("your project", "the layer")
    clause = clause.replace("the layer depends on", "the layer requires")
    if found := re.search(r"(\S+) was not found in the package registry", clause):
        return (
            f"{found[1]} is not on the package index; check the name, or the index"
            " that [tool.uv] sets for it"
        )
    if found := re.search(r"(\S+) was not found in the provided package locations", clause):
        return f"{found[1]} is in none of the package locations (--local-wheels, find-links)"
    if found := re.search(r"there is no version of (\S+)", clause):
        return f"{found[1]}: no such version on the package index"
    if found := re.match(r"only (\S+) is available and the layer requires (\S+)$", clause):
        return f"{found[2]}: no version matches (only {found[1]} is available)"
    return f"conflicting requirements: {clause}"
