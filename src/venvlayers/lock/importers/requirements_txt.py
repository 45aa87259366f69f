"""``requirements.txt``: one requirement per line, ``-r`` includes, hashes ignored."""

from __future__ import annotations

from pathlib import Path

from venvlayers.lock.importers._common import fail

# Options that only say how to check or fetch what a line names; the lock decides that.
_IGNORED_OPTIONS = ("--hash",)


def read(path: Path) -> list[str]:
    return _read(path, seen=())


def _read(path: Path, seen: tuple[Path, ...]) -> list[str]:
    if path in seen:
        fail(path, "includes itself through -r")
    requirements: list[str] = []
    for number, line in _logical_lines(path.read_text(encoding="utf-8")):
        if line.startswith(("-r", "--requirement")):
            included = _option_value(path, number, line)
            requirements.extend(_read((path.parent / included).resolve(), (*seen, path)))
            continue
        if line.startswith("-"):
            option = line.split()[0].split("=")[0]
            fail(
                path,
                f"line {number}: option {option} is not supported here"
                " (indexes and sources belong in [tool.uv] of the stack specification)",
            )
        words = [w for w in line.split() if not w.startswith(_IGNORED_OPTIONS)]
        requirements.append(" ".join(words))
    return requirements


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines without comments, with ``\\`` continuations joined, and their line numbers."""
    result: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            result.append((start, joined))
    if pending.strip():
        result.append((start, pending.strip()))
    return result


def _option_value(path: Path, number: int, line: str) -> str:
    for prefix in ("--requirement", "-r"):
        if line.startswith(prefix):
            value = line[len(prefix) :].lstrip(" =")
            if value:
                return value
    fail(path, f"line {number}: -r needs a file name")
