"""Typed access to one TOML table, with errors that name the layer and the field."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NoReturn

from venvlayers.errors import SpecError


class Fields:
    """Reads fields of one table and remembers which were read, to report unknown ones."""

    def __init__(self, where: str, table: dict[str, Any]) -> None:
        self.where = where
        self._table = table
        self._seen: set[str] = set()

    def fail(self, field: str | None, message: str) -> NoReturn:
        prefix = f"{self.where}: {field!r}" if field else self.where
        raise SpecError(f"{prefix}: {message}")

    def has(self, name: str) -> bool:
        return name in self._table

    def _get(self, name: str) -> Any:
        self._seen.add(name)
        return self._table.get(name)

    def string(
        self, name: str, *, required: bool = False, default: str | None = None
    ) -> str | None:
        value = self._get(name)
        if value is None:
            if required:
                self.fail(name, "missing required field")
            return default
        if not isinstance(value, str):
            self.fail(name, f"must be a string, not {_type_name(value)}")
        return value

    def required_string(self, name: str) -> str:
        value = self.string(name, required=True)
        assert value is not None
        return value

    def boolean(self, name: str, *, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(name, f"must be true or false, not {_type_name(value)}")
        return value

    def string_list(
        self, name: str, *, required: bool = False, allow_single: bool = False
    ) -> list[str] | None:
        value = self._get(name)
        if value is None:
            if required:
                self.fail(name, "missing required field (use [] for none)")
            return None
        if allow_single and isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(name, f"must be a list of strings, not {_describe(value)}")
        return list(value)

    def string_table(self, name: str) -> dict[str, str]:
        value = self._get(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.fail(name, f"must be a table of strings, not {_describe(value)}")
        return dict(value)

    def unknown(self, known: Collection[str] | None = None) -> list[str]:
        """Fields present in the table that are not ``known`` (default: not read so far)."""
        return sorted(set(self._table) - set(self._seen if known is None else known))

    def check_unknown(self, suggest: Callable[[str], str | None] | None = None) -> None:
        unknown = self.unknown()
        if unknown:
            hint = suggest(unknown[0]) if suggest else None
            extra = f" (did you mean {hint!r}?)" if hint else ""
            self.fail(unknown[0], f"unknown field{extra}")


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        bad = next((v for v in value if not isinstance(v, str)), None)
        return f"a list containing {_type_name(bad)}" if bad is not None else "a list"
    if isinstance(value, dict):
        bad = next((v for v in value.values() if not isinstance(v, str)), None)
        return f"a table containing {_type_name(bad)}" if bad is not None else "a table"
    return _type_name(value)
