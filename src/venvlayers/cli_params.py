"""Parameter types of the command line: paths resolved at the edge, lazy registry choices."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click


class UserPath(click.Path):
    """A path typed by the user, made absolute here, once: no stage sees a relative path,
    a ``..`` or the current directory, so every message and record names the real place.

    ``folder``: the path names a folder that may not exist yet; refused when something on
    its way is a file, so no command fails later with NotADirectoryError.
    """

    def __init__(self, *, folder: bool = False, exists: bool = False) -> None:
        super().__init__(path_type=Path, file_okay=not folder, exists=exists)
        self.folder = folder

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path) and value.is_absolute():
            return value
        if not str(value):
            self.fail("an empty path names no folder; give a path", param, ctx)
        try:
            os.stat(value)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                self.fail(f"path too long ({len(str(value))} characters)", param, ctx)
        path = Path(os.fsdecode(super().convert(value, param, ctx))).resolve()
        if self.folder:
            on_the_way = next((p for p in (path, *path.parents) if p.exists()), None)
            if on_the_way is not None and not on_the_way.is_dir():
                self.fail(f"{on_the_way} is a file, so {path} cannot be a folder", param, ctx)
        return path


class RegistryChoice(click.Choice):  # type: ignore[type-arg]
    """A choice among the names of a registry, read only when needed (help or a value
    given), so that every command does not import every provider to start."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[Any, ...]:  # type: ignore[override]
        return tuple(self._names())


def archive_formats() -> Sequence[str]:
    from venvlayers.publish.formats import FORMATS

    return list(FORMATS)


def runtime_sources() -> Sequence[str]:
    from venvlayers.spec import RUNTIME_SOURCES

    return RUNTIME_SOURCES


class SpecFolder(UserPath):
    """A folder that, given relative, lies relative to the stack spec's folder, as in
    venvstacks (``--build-dir``, ``--output-dir``): the value stays relative here and
    :func:`under_spec` places it once the spec is known."""

    def __init__(self) -> None:
        super().__init__(folder=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path) or not str(value) or Path(value).expanduser().is_absolute():
            return super().convert(value, param, ctx)
        return Path(value)


def under_spec(path: Path | None, spec_dir: Path, option: str) -> Path | None:
    """``path`` placed against the spec's folder when relative, checked as a folder."""
    if path is None or path.is_absolute():
        return path
    try:
        placed = UserPath(folder=True).convert(str(spec_dir / path), None, None)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint=f"'{option}'") from None
    assert isinstance(placed, Path)
    return placed
