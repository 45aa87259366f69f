"""Typed getters over untrusted JSON: each failure names the file and the exact field.

Every reader of a layer-contract file goes through :class:`Fields`, so a wrong type, a
missing key or an illegal name is one line such as
``venvstacks.json: layers.frameworks[0].lock_version: must be an integer >= 1, not "x"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from venvlayers.errors import MetadataError

# A layer's folder name on every target: no separators, no leading dot (``.venvlayers``
# and ``..`` are never layer names), short enough for ``.<name>.<random>.partial`` to stay
# under every filesystem's 255-byte limit.
NAME_MAX = 128
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Nesting deeper than any file venvlayers or venvstacks writes; refused before parsing
# recurses, so a hostile file cannot exhaust the stack.
_MAX_DEPTH = 32


def load_json(path: Path, *, origin: str) -> Any:
    """The JSON document at ``path`` (a regular file), or a :class:`MetadataError`."""
    try:
        with path.open("rb") as stream:
            raw = stream.read()
    except OSError as exc:
        raise MetadataError(f"{origin}: cannot read ({exc.strerror})") from None
    return parse_json(raw, origin=origin)


def parse_json(raw: bytes, *, origin: str) -> Any:
    """The JSON document ``raw`` (untrusted bytes), or a :class:`MetadataError`."""
    if _depth(raw) > _MAX_DEPTH:
        raise MetadataError(f"{origin}: nested more than {_MAX_DEPTH} levels deep")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MetadataError(f"{origin}: not valid JSON ({exc})") from None


def _depth(raw: bytes) -> int:
    # Brackets inside strings only make this an over-estimate, which errs on refusing. The
    # other bytes are dropped in C first: a layer manifest is megabytes, its brackets few.
    depth = deepest = 0
    for byte in raw.translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


class Fields:
    """A JSON object read at ``context`` (a dotted path inside ``origin``)."""

    def __init__(self, data: Any, origin: str, context: str = "") -> None:
        self.origin = origin
        self.context = context
        if not isinstance(data, dict):
            self.fail_here(f"must be a JSON object, not {_shown(data)}")
        self.data: dict[str, Any] = data

    def where(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.context}[{key}]"
        return f"{self.context}.{key}" if self.context else key

    def fail(self, key: str | int, problem: str) -> NoReturn:
        raise MetadataError(f"{self.origin}: {self.where(key)}: {problem}")

    def fail_here(self, problem: str) -> NoReturn:
        raise MetadataError(f"{self.origin}: {self.context or 'the document'}: {problem}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def object(self, key: str) -> Fields:
        if key not in self.data:
            self.fail(key, "missing")
        return Fields(self.data[key], self.origin, self.where(key))

    def objects(self, key: str, *, default: list[Any] | None = None) -> Iterator[Fields]:
        items = self.data.get(key, default)
        if not isinstance(items, list):
            self.fail(key, f"must be a list, not {_shown(items)}")
        for index, item in enumerate(items):
            yield Fields(item, self.origin, f"{self.where(key)}[{index}]")

    def text(self, key: str, *, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value:
            self.fail(key, f"must be a non-empty string, not {_shown(value)}")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.data.get(key) is None else self.text(key)

    def integer(self, key: str, *, minimum: int = 0) -> int:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(key, f"must be an integer >= {minimum}, not {_shown(value)}")
        return value

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {_shown(value)}")
        return value

    def name(self, key: str) -> str:
        return check_name(self.text(key), lambda problem: self.fail(key, problem))

    def names(self, key: str, *, default: list[str] | None = None) -> tuple[str, ...]:
        value = self.data.get(key, default)
        if not isinstance(value, list):
            self.fail(key, f"must be a list of layer names, not {_shown(value)}")
        found = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(key, f"[{index}] must be a layer name, not {_shown(item)}")
            found.append(check_name(item, lambda p, i=index: self.fail(key, f"[{i}] {p}")))
        return tuple(found)

    def file_name(self, key: str) -> str:
        """A plain file name: a name as above, so never a path, ``..`` or a hidden file."""
        return self.name(key)

    def sha256(self, key: str) -> str:
        value = self.text(key)
        if not _SHA256.fullmatch(value):
            self.fail(key, f"must be 64 lowercase hex digits, not {_shown(value)}")
        return value

    def plain(self) -> dict[str, Any]:
        return dict(self.data)


def check_name(value: str, fail: Any) -> str:
    if len(value) > NAME_MAX:
        fail(f"longer than {NAME_MAX} characters ({len(value)})")
    if not _NAME.fullmatch(value):
        fail(
            f"{_shown(value)} is not a legal layer name (letters, digits and _ . @ + -,"
            " not starting with . or -)"
        )
    return value


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    text = {"dict": "an object", "list": "a list"}.get(text, text)
    return text if len(text) <= 40 else text[:37] + "..."
