"""Options shared by the commands, and the small steps every stack command takes first."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from venvlayers import ui
from venvlayers.cli_params import SpecFolder, UserPath, under_spec
from venvlayers.errors import SpecError

if TYPE_CHECKING:
    from venvlayers.spec import StackSpec

F = TypeVar("F", bound=Callable[..., Any])


def _count_verbose(_ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        ui.settings.verbose_count += value
        ui.reconfigure()


def _set_flag(name: str) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            setattr(ui.settings, name, name != "progress")
            ui.reconfigure()

    return callback


def output_options(func: F) -> F:
    """-v, -q, --debug, --json and --no-progress: the same before or after the command."""
    for option in reversed(
        [
            click.option("-v", "--verbose", count=True, expose_value=False,
                         callback=_count_verbose, help="More output; -vv also shows tracebacks."),
            click.option("-q", "--quiet", is_flag=True, expose_value=False,
                         callback=_set_flag("quiet"), help="Only errors and the result."),
            click.option("--debug", is_flag=True, expose_value=False,
                         callback=_set_flag("debug"), help="Show a traceback with any error."),
            click.option("--json", is_flag=True, expose_value=False, callback=_set_flag("json"),
                         help="The result as one JSON document on stdout (see docs/cli.md);"
                         " text for people goes to stderr."),
            click.option("--no-progress", is_flag=True, expose_value=False,
                         callback=_set_flag("progress"),
                         help="No progress bars, even on a terminal."),
        ]
    ):  # fmt: skip
        func = option(func)
    return func


def spec_argument(func: F) -> F:
    return click.argument(
        "spec", type=UserPath(), default="venvstacks.toml", required=False, metavar="[SPEC]"
    )(func)


def include_option(func: F) -> F:
    return click.option(
        "--include",
        "include",
        multiple=True,
        metavar="PATTERN",
        help="Only layers matching this glob (name or build name), with the layers beneath"
        " and above them. Repeatable.",
    )(func)


def allow_missing_option(func: F) -> F:
    return click.option(
        "--allow-missing",
        is_flag=True,
        help="An --include or --reset-lock pattern that matches no layer is a warning,"
        " not an error (as in venvstacks).",
    )(func)


def build_dir_option(func: F) -> F:
    return click.option(
        "--build-dir",
        type=SpecFolder(),
        help="The build folder; a relative path lies in SPEC's folder (default: _build).",
    )(func)


def output_dir_option(default: str) -> Callable[[F], F]:
    return click.option(
        "--output-dir",
        "-o",
        type=SpecFolder(),
        help=f"Where the output goes; a relative path lies in SPEC's folder (default: {default}).",
    )


def show_options(func: F) -> F:
    """venvstacks' --show and --show-only: the stack and what this command would do to it."""
    func = click.option(
        "--show-only",
        is_flag=True,
        help="Only show the layers and the operations selected for each; do nothing.",
    )(func)
    return click.option(
        "--show", is_flag=True, help="Show the layers and the selected operations first."
    )(func)


def venvstacks_selection_flags(*steps: str) -> Callable[[F], F]:
    """venvstacks' --<step>-dependencies/--<step>-derived flags, accepted so its scripts run:
    venvlayers always takes the layers beneath and above an --include match."""

    def decorate(func: F) -> F:
        names = [f"--{step}-{what}" for step in steps for what in ("dependencies", "derived")]
        for name in [*names, "--include-dependencies"]:
            func = click.option(name, is_flag=True, expose_value=False, hidden=True)(func)
        return func

    return decorate


def load(spec: Path) -> StackSpec:
    from venvlayers.spec import load_stack

    stack = load_stack(spec)
    for warning in stack.warnings:
        ui.warn(warning)
    return stack


def spec_folder(stack: StackSpec, path: Path | None, option: str) -> Path | None:
    return under_spec(path, stack.spec_dir, option)


def check_patterns(
    stack: StackSpec, option: str, patterns: Sequence[str], *, allow_missing: bool
) -> None:
    """A pattern that matches no layer is a typo more often than not (venvstacks' rule)."""
    names = [name for layer in stack.layers() for name in (layer.name, layer.build_name)]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if not unmatched:
        return
    known = ", ".join(layer.build_name for layer in stack.layers())
    line = f"{option} {', '.join(unmatched)}: matches no layer of {stack.path} (layers: {known})"
    if allow_missing:
        ui.warn(line)
        return
    raise SpecError(f"{line}; pass --allow-missing to go on without it")
