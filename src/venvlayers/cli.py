"""Command line: options in, one call into a stage, the result rendered out."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from venvlayers import __version__, ui
from venvlayers.errors import VenvLayersError

if TYPE_CHECKING:
    from venvlayers.spec import StackSpec

F = TypeVar("F", bound=Callable[..., Any])


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Lock, build, publish and deploy layered Python environments defined by a"
    " venvstacks.toml stack specification.",
)
@click.version_option(__version__, "--version", prog_name="venvlayers")
@click.option("-v", "--verbose", count=True, help="More output; -vv also shows tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and results.")
@click.option("--debug", is_flag=True, help="Show a traceback with any error.")
def cli(verbose: int, quiet: bool, debug: bool) -> None:
    ui.configure(-1 if quiet else verbose, debug=debug)


def spec_argument(func: F) -> F:
    return click.argument("spec", type=click.Path(path_type=Path), metavar="SPEC")(func)


def include_option(func: F) -> F:
    return click.option(
        "--include",
        "include",
        multiple=True,
        metavar="PATTERN",
        help="Only layers matching this glob (name or build name), with the layers beneath"
        " and above them. Repeatable.",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(func)


def load(spec: Path) -> StackSpec:
    from venvlayers.spec import load_stack

    stack = load_stack(spec)
    for warning in stack.warnings:
        ui.warn(warning)
    return stack


@cli.command()
@spec_argument
@include_option
@json_option
def show(spec: Path, include: tuple[str, ...], as_json: bool) -> None:
    """Show the layers of the stack SPEC, grouped by kind.

    Each layer is listed with its lower layers in sys.path order. A leading *
    marks a layer without a valid lock; versioned layers show
    build-name -> deploy-name.
    """
    from venvlayers.show import layer_views, render_json, render_text

    stack = load(spec)
    views = layer_views(stack, include)
    if as_json:
        ui.emit_json(render_json(stack, views))
    else:
        ui.result(render_text(views))


@cli.command()
@spec_argument
@include_option
@click.option("--if-needed", is_flag=True, help="Only lock layers without a valid lock.")
@click.option(
    "--reset-lock",
    "reset_lock",
    multiple=True,
    metavar="PATTERN",
    help="Forget the existing pins of matching layers before relocking. Repeatable.",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Accept packages that lack a wheel for some target platform (with a warning).",
)
@click.option(
    "--local-wheels",
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder of wheels to use beside the package indexes.",
)
@click.option("--no-index", is_flag=True, help="Use only --local-wheels, no package index.")
def lock(
    spec: Path,
    include: tuple[str, ...],
    if_needed: bool,
    reset_lock: tuple[str, ...],
    allow_missing: bool,
    local_wheels: Path | None,
    no_index: bool,
) -> None:
    """Lock every layer of SPEC into requirements/<layer>/pylock.<layer>.toml.

    Lower layers constrain the layers above them; relocking unchanged inputs
    rewrites nothing.
    """
    from venvlayers.lock import lock_stack

    stack = load(spec)
    results = lock_stack(
        stack,
        include=include,
        if_needed=if_needed,
        reset_lock=reset_lock,
        allow_missing=allow_missing,
        local_wheels=local_wheels,
        no_index=no_index,
        report=ui.info,
    )
    for result in results:
        state = "skipped" if result.skipped else ("updated" if result.changed else "unchanged")
        ui.result(f"{result.build_name}: {state} (lock_version {result.lock_version})")


def build_options(func: F) -> F:
    func = click.option(
        "--build-dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Where layers are built (default: _build beside SPEC).",
    )(func)
    func = click.option(
        "--runtime-source",
        type=click.Choice(["auto", "standalone", "local", "archive"]),
        help="Where runtimes come from, for every runtime layer"
        " (default: each layer's 'source', or $VENVLAYERS_RUNTIME_SOURCE).",
    )(func)
    func = click.option(
        "--lock-if-needed", is_flag=True, help="Lock layers without a valid lock first."
    )(func)
    func = click.option(
        "--clean", is_flag=True, help="Rebuild the selected layers even if they are up to date."
    )(func)
    return func


@cli.command()
@spec_argument
@include_option
@build_options
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=2, show_default=True,
    help="Layers built at once.",
)  # fmt: skip
def build(
    spec: Path,
    include: tuple[str, ...],
    build_dir: Path | None,
    runtime_source: str | None,
    lock_if_needed: bool,
    clean: bool,
    jobs: int,
) -> None:
    """Build the layers of SPEC from their locks into the build folder.

    Layers whose inputs are unchanged are not rebuilt.
    """
    stack = load(spec)
    run_build(stack, include, build_dir, runtime_source, lock_if_needed, clean, jobs)


def run_build(
    stack: StackSpec,
    include: tuple[str, ...],
    build_dir: Path | None,
    runtime_source: str | None,
    lock_if_needed: bool,
    clean: bool,
    jobs: int,
) -> Path:
    from venvlayers.build.stage import BuildOptions, build_stack, default_build_dir

    if lock_if_needed:
        from venvlayers.lock import lock_stack

        lock_stack(stack, include=include, if_needed=True, report=ui.info)
    options = BuildOptions(
        build_dir=build_dir or default_build_dir(stack),
        include=include,
        clean=clean,
        runtime_source=runtime_source,
        jobs=jobs,
    )
    for result in build_stack(stack, options, report=ui.info):
        state = "built" if result.rebuilt else "up to date"
        ui.result(f"{result.install_target}: {state} ({result.path})")
    return options.build_dir


def main() -> NoReturn:
    """Console-script entry point: one error line and exit 1 for any user-facing error."""
    try:
        cli.main(args=sys.argv[1:], prog_name="venvlayers", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        ui.error("interrupted; the previous good state is left in place")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except VenvLayersError as exc:
        if ui.settings.tracebacks:
            ui.stderr.print_exception()
        ui.error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        ui.error("interrupted; the previous good state is left in place")
        sys.exit(130)
    sys.exit(0)
