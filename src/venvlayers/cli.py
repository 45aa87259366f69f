"""Command line: options in, one call into a stage, the result rendered out."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from venvlayers import __version__, ui
from venvlayers.cli_params import RegistryChoice, UserPath, archive_formats, runtime_sources
from venvlayers.errors import VenvLayersError

if TYPE_CHECKING:
    from venvlayers import pipeline
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
    return click.argument("spec", type=UserPath(), metavar="SPEC")(func)


def include_option(func: F) -> F:
    return click.option(
        "--include",
        "include",
        multiple=True,
        metavar="PATTERN",
        help="Only layers matching this glob (name or build name), with the layers beneath"
        " and above them. Repeatable.",
    )(func)


def build_dir_option(func: F) -> F:
    return click.option(
        "--build-dir",
        type=UserPath(folder=True),
        help="The build folder (default: _build beside SPEC).",
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
    type=UserPath(folder=True),
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


def publish_options(func: F) -> F:
    func = click.option(
        "--output-dir",
        "-o",
        type=UserPath(folder=True),
        help="Where archives and metadata go (default: _artifacts beside SPEC).",
    )(func)
    func = click.option(
        "--format",
        "fmt",
        type=RegistryChoice(archive_formats),
        default="tar.zst",
        show_default=True,
        help="Archive format.",
    )(func)
    func = click.option(
        "--tag-outputs",
        is_flag=True,
        help="Name archives <install_target>-<platform>-<archive_build>.<ext>.",
    )(func)
    func = click.option(
        "--force", is_flag=True, help="Write archives even when an unchanged one exists."
    )(func)
    return func


def build_options(func: F) -> F:
    func = build_dir_option(func)
    func = click.option(
        "--runtime-source",
        type=RegistryChoice(runtime_sources),
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
@click.option("--publish", is_flag=True, help="Publish the archives after building.")
@publish_options
def build(
    spec: Path,
    include: tuple[str, ...],
    build_dir: Path | None,
    runtime_source: str | None,
    lock_if_needed: bool,
    clean: bool,
    jobs: int,
    publish: bool,
    output_dir: Path | None,
    fmt: str,
    tag_outputs: bool,
    force: bool,
) -> None:
    """Build the layers of SPEC from their locks into the build folder.

    Layers whose inputs are unchanged are not rebuilt. With --publish, the
    archives are written afterwards as `venvlayers publish` would.
    """
    from venvlayers import pipeline

    stack = load(spec)
    settings = pipeline.BuildSettings(
        build_dir=build_dir, include=include, clean=clean, runtime_source=runtime_source,
        jobs=jobs, lock_if_needed=lock_if_needed,
    )  # fmt: skip
    built = pipeline.build(stack, settings, report=ui.info)
    render_built(built)
    if publish:
        render_published(
            publish_with_progress(
                stack, built.build_dir, publish_settings(output_dir, fmt, tag_outputs, force),
                include,
            )
        )  # fmt: skip


def publish_settings(
    output_dir: Path | None, fmt: str, tag_outputs: bool, force: bool, dry_run: bool = False
) -> pipeline.PublishSettings:
    from venvlayers import pipeline

    return pipeline.PublishSettings(
        output_dir=output_dir, fmt=fmt, tag_outputs=tag_outputs, force=force, dry_run=dry_run
    )


def publish_with_progress(
    stack: StackSpec, build_dir: Path, settings: pipeline.PublishSettings, include: tuple[str, ...]
) -> pipeline.Published:
    from venvlayers import pipeline
    from venvlayers.publish import archive_progress

    with archive_progress(enabled=ui.progress_enabled()) as progress:
        return pipeline.publish(
            stack, build_dir, settings, include=include, report=ui.info, progress=progress
        )


def render_built(built: pipeline.Built) -> None:
    for result in built.layers:
        state = "built" if result.rebuilt else "up to date"
        ui.result(f"{result.install_target}: {state} ({result.path})")


def render_published(published: pipeline.Published) -> None:
    result = published.result
    if result.plan:
        ui.emit_json(
            {"dry_run": True, "output_dir": str(published.output_dir), "layers": list(result.plan)}
        )
        return
    for layer in result.layers:
        assert layer.archive is not None
        state = "reused" if layer.install_target in result.reused else "written"
        size_mib = layer.archive.archive_size / 2**20
        ui.result(f"{layer.archive.archive_name}: {state} ({size_mib:.1f} MiB)")


@cli.command()
@spec_argument
@include_option
@publish_options
@build_dir_option
@click.option(
    "--dry-run", is_flag=True, help="Print the metadata that would be written; write nothing."
)
def publish(
    spec: Path,
    include: tuple[str, ...],
    output_dir: Path | None,
    fmt: str,
    tag_outputs: bool,
    force: bool,
    build_dir: Path | None,
    dry_run: bool,
) -> None:
    """Write one reproducible archive per built layer of SPEC, plus the stack metadata.

    An unchanged layer keeps its archive; the metadata goes to
    __venvstacks__/venvstacks.json and __venvstacks__/env_metadata/.
    """
    from venvlayers.build import default_build_dir

    stack = load(spec)
    settings = publish_settings(output_dir, fmt, tag_outputs, force, dry_run)
    render_published(
        publish_with_progress(stack, build_dir or default_build_dir(stack), settings, include)
    )


@cli.command("local-export")
@spec_argument
@include_option
@click.option(
    "--output-dir",
    "-o",
    type=UserPath(folder=True),
    default=None,
    help="Where the layers go (default: _export beside SPEC).",
)
@build_dir_option
def local_export(
    spec: Path, include: tuple[str, ...], output_dir: Path | None, build_dir: Path | None
) -> None:
    """Copy the built layers of SPEC into a deployed-like folder and run their postinstall.py."""
    from venvlayers.build import default_build_dir
    from venvlayers.publish import export_stack

    stack = load(spec)
    result = export_stack(
        stack,
        build_dir=build_dir or default_build_dir(stack),
        output_dir=output_dir or stack.spec_dir / "_export",
        include=include,
        report=ui.info,
    )
    for name in result.layers:
        ui.result(f"{name}: exported to {result.output_dir / name}")


target_option = click.option(
    "--target",
    "-t",
    required=True,
    type=UserPath(folder=True),
    help="The folder the layers are deployed into.",
)


@cli.command()
@click.argument("source", type=UserPath(), metavar="SOURCE")
@target_option
@click.option(
    "--app", "apps", multiple=True, metavar="NAME", help="Deploy only this app. Repeatable."
)
@click.option(
    "--compile/--no-compile",
    "compile_bytecode",
    default=True,
    show_default=True,
    help="Byte-compile the new layers (apps start faster; needs no write access later).",
)
def deploy(source: Path, target: Path, apps: tuple[str, ...], compile_bytecode: bool) -> None:
    """Deploy apps from a published output folder SOURCE into --target.

    Archives are checked against the metadata, unpacked beside their final place,
    made ready by postinstall.py from the runtime upward, then moved into place.
    Layers already deployed with the same hash are skipped.
    """
    from venvlayers.deploy import deploy as deploy_stack

    result = deploy_stack(
        source, target, apps=apps, compile_bytecode=compile_bytecode, report=ui.info
    )
    for name in result.deployed:
        ui.result(f"{name}: deployed")
    for name in result.skipped:
        ui.result(f"{name}: already deployed")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("target", type=UserPath(folder=True, exists=True), metavar="DIR")
@click.argument("name", metavar="APP")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(target: Path, name: str, args: tuple[str, ...]) -> None:
    """Run the deployed app APP from DIR with ARGS; its exit status is passed through.

    APP is the app's name in the spec, its layer name or its install target.
    Naming a runtime or framework layer runs that layer's python with ARGS.
    """
    from venvlayers.deploy import run_app

    # Click keeps the `--` that separates the app's own arguments; the app must not see it.
    app_args = list(args[1:] if args[:1] == ("--",) else args)
    raise SystemExit(run_app(target, name, app_args))


@cli.command()
@click.argument("target", type=UserPath(folder=True, exists=True), metavar="DIR")
@click.argument("apps", nargs=-1, metavar="[APP]...")
@json_option
def verify(target: Path, apps: tuple[str, ...], as_json: bool) -> None:
    """Compare the files deployed in DIR with each layer's manifest.

    Reports changed, missing and unexpected files; exit status 1 on any drift.
    """
    from venvlayers.deploy import verify as verify_target

    report = verify_target(target, apps)
    if as_json:
        ui.emit_json(report.to_json())
    else:
        ui.result(report.render())
    if not report.ok:
        raise SystemExit(1)


@cli.command()
@click.argument("target", type=UserPath(folder=True, exists=True), metavar="DIR")
@click.argument("apps", nargs=-1, required=True, metavar="APP...")
def remove(target: Path, apps: tuple[str, ...]) -> None:
    """Remove deployed apps from DIR, and the layers no remaining app needs."""
    from venvlayers.deploy import gc as collect
    from venvlayers.deploy import remove_apps

    for name in remove_apps(target, apps):
        ui.result(f"{name}: removed")
    for name in collect(target):
        ui.result(f"{name}: removed (no app uses it)")


@cli.command()
@click.argument("target", type=UserPath(folder=True, exists=True), metavar="DIR")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def gc(target: Path, dry_run: bool) -> None:
    """Remove the layers in DIR that no deployed app uses."""
    from venvlayers.deploy import gc as collect

    removed = collect(target, dry_run=dry_run)
    for name in removed:
        ui.result(f"{name}: {'would be removed' if dry_run else 'removed'}")
    if not removed:
        ui.result("nothing to remove")


@cli.command()
@spec_argument
@target_option
@build_options
@publish_options
@click.option(
    "--run",
    "run_apps",
    multiple=True,
    metavar="APP",
    help="Run only this app after deploying. Repeatable (default: every app).",
)
@click.option("--no-run", is_flag=True, help="Deploy but do not run any app.")
@click.option(
    "--run-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    metavar="SECONDS",
    help="How long each app may run; one still running then (a service) is stopped"
    " and counts as started.",
)
def up(
    spec: Path,
    target: Path,
    build_dir: Path | None,
    runtime_source: str | None,
    lock_if_needed: bool,
    clean: bool,
    output_dir: Path | None,
    fmt: str,
    tag_outputs: bool,
    force: bool,
    run_apps: tuple[str, ...],
    no_run: bool,
    run_timeout: float,
) -> None:
    """Lock (if needed), build, publish and deploy SPEC into --target, then smoke-run the apps.

    The whole pipeline in one command; each step skips work that is already done. Each
    app (or each --run APP) then runs once with no arguments and no input: it must exit
    with status 0, or still be running after --run-timeout seconds (a service), when it is
    stopped. `up` always returns by itself; exit status 1 when an app failed.
    """
    from venvlayers import pipeline
    from venvlayers.publish import archive_progress

    stack = load(spec)
    with archive_progress(enabled=ui.progress_enabled()) as progress:
        done = pipeline.up(
            stack,
            target,
            build_settings=pipeline.BuildSettings(
                build_dir=build_dir, clean=clean, runtime_source=runtime_source
            ),
            publish_settings=publish_settings(output_dir, fmt, tag_outputs, force),
            run_settings=pipeline.RunSettings(
                apps=run_apps, time_limit=run_timeout, enabled=not no_run
            ),
            report=ui.info,
            on_run=lambda name: ui.info(f"$ venvlayers run {target} {name}"),
            progress=progress,
        )
    ui.result(f"deployed {len(done.deployed.apps)} apps into {target}")
    for run in done.runs:
        if run.status is None:
            ui.result(f"{run.name}: still running after {run_timeout:g} s; stopped (a service?)")
        elif run.status == 0:
            ui.result(f"{run.name}: ran ({run.seconds:.1f} s)")
        else:
            ui.error(f"{run.name}: exited with status {run.status}")
    if not all(run.ok for run in done.runs):
        raise SystemExit(1)


def main() -> NoReturn:
    """Console-script entry point: one error line and exit 1 for any user-facing error."""
    try:
        cli.main(args=sys.argv[1:], prog_name="venvlayers", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        ui.error("interrupted; the previous good state is left in place")
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        ui.result(exc.format_message())
        sys.exit(0)
    except click.UsageError as exc:
        # Bad input on the command line is one line and status 1, like any other bad input.
        command = exc.ctx.command_path if exc.ctx else "venvlayers"
        ui.error(f"{exc.format_message().rstrip('.')} (see `{command} --help`)")
        sys.exit(1)
    except click.ClickException as exc:
        ui.error(exc.format_message())
        sys.exit(1)
    except VenvLayersError as exc:
        if ui.settings.tracebacks:
            ui.print_exception()
        ui.error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        ui.error("interrupted; the previous good state is left in place")
        sys.exit(130)
    except OSError as exc:
        # The last line of defence for what the stages do not word themselves: the file
        # system refused (read-only, full, permissions). Every write is atomic, so the
        # previous state is still in place.
        if ui.settings.tracebacks:
            ui.print_exception()
        ui.error(os_error_line(exc))
        sys.exit(1)
    sys.exit(0)


_OS_ERROR_HINTS = {
    errno.EROFS: "the file system is read-only; use a writable folder",
    errno.EACCES: "permission denied; check the folder's owner and mode",
    errno.EPERM: "operation not permitted; check the folder's owner and mode",
    errno.ENOSPC: "no space left on the device; free some space and run again",
    errno.EDQUOT: "disk quota exceeded; free some space and run again",
    errno.ENAMETOOLONG: "a path is too long; use a shorter folder",
}


def os_error_line(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "venvlayers"
    hint = _OS_ERROR_HINTS.get(exc.errno or 0, exc.strerror or str(exc))
    return f"{where}: {hint}; the previous state is left in place"
