"""The commands that work on a stack specification: show, lock, build, publish,
local-export and up. Each maps its flags to a stage call and reports through cli_report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from venvlayers import ui
from venvlayers.cli_options import (
    allow_missing_option,
    build_dir_option,
    check_patterns,
    include_option,
    load,
    output_dir_option,
    output_options,
    show_options,
    spec_argument,
    spec_folder,
    venvstacks_selection_flags,
)
from venvlayers.cli_params import RegistryChoice, UserPath, archive_formats, runtime_sources
from venvlayers.cli_progress import live
from venvlayers.cli_report import (
    build_doc,
    build_lines,
    emit,
    export_doc,
    lock_layers,
    lock_lines,
    publish_doc,
    publish_lines,
    run_lines,
    runs_doc,
)

if TYPE_CHECKING:
    from venvlayers import pipeline
    from venvlayers.spec import StackSpec


@click.command()
@spec_argument
@include_option
@allow_missing_option
@build_dir_option
@output_options
def show(spec: Path, include: tuple[str, ...], allow_missing: bool, build_dir: Path | None) -> None:
    """Show the layers of the stack SPEC, grouped by kind.

    Each layer is listed with its lower layers in sys.path order. A leading *
    marks a layer without a valid lock; versioned layers show
    build-name -> deploy-name. --build-dir is accepted for venvstacks' scripts.
    """
    stack = load(spec)
    check_patterns(stack, "--include", include, allow_missing=allow_missing)
    _show(stack, include, operations=None)


def _show(
    stack: StackSpec,
    include: tuple[str, ...],
    operations: Callable[[str, bool], tuple[str, ...]] | None,
) -> None:
    """The stack (with what the command would do to each layer): text, or JSON with --json."""
    from venvlayers.show import layer_views, render_json, render_text

    views = layer_views(stack, include)
    if operations is not None:
        views = [replace(v, operations=operations(v.build_name, v.locked)) for v in views]
    if ui.settings.json:
        ui.emit_json(render_json(stack, views))
    else:
        ui.result(render_text(views))


def _shown(
    stack: StackSpec,
    include: tuple[str, ...],
    show: bool,
    show_only: bool,
    operations: Callable[[str, bool], tuple[str, ...]],
) -> bool:
    """venvstacks' --show/--show-only; True when the command should stop there."""
    if not (show or show_only):
        return False
    if show and not show_only and ui.settings.json:
        # One JSON document on stdout: the command's result. The stack goes to people.
        from venvlayers.show import layer_views, render_text

        views = [replace(v, operations=operations(v.build_name, v.locked))
                 for v in layer_views(stack, include)]  # fmt: skip
        ui.info(render_text(views))
        return False
    _show(stack, include, operations)
    return show_only


@click.command()
@spec_argument
@include_option
@click.option("--if-needed", is_flag=True, help="Only lock layers without a valid lock.")
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing: exit 1 naming each layer whose lock is stale, 0 when all are valid.",
)
@click.option(
    "--reset-lock",
    "reset_lock",
    multiple=True,
    metavar="PATTERN",
    help="Forget the existing pins of matching layers before relocking. Repeatable.",
)
@allow_missing_option
@click.option(
    "--accept-missing-wheels",
    is_flag=True,
    help="Accept packages that lack a wheel for some target platform (with a warning).",
)
@click.option(
    "--local-wheels",
    type=UserPath(folder=True),
    help="A folder of wheels to use beside the package indexes.",
)
@click.option("--index/--no-index", default=True,
              help="--no-index: use only --local-wheels, no package index.")  # fmt: skip
@build_dir_option
@click.option("--clean", is_flag=True, hidden=True, help="Accepted for venvstacks' scripts.")
@show_options
@venvstacks_selection_flags("lock")
@output_options
def lock(
    spec: Path,
    include: tuple[str, ...],
    if_needed: bool,
    check: bool,
    reset_lock: tuple[str, ...],
    allow_missing: bool,
    accept_missing_wheels: bool,
    local_wheels: Path | None,
    index: bool,
    build_dir: Path | None,
    clean: bool,
    show: bool,
    show_only: bool,
) -> None:
    """Lock every layer of SPEC into requirements/<layer>/pylock.<layer>.toml.

    Lower layers constrain the layers above them; relocking unchanged inputs
    rewrites nothing. --check locks nothing and writes nothing: it exits 1
    naming each stale lock (like `uv lock --check`).
    """
    from venvlayers.lock import lock_stack

    stack = load(spec)
    check_patterns(stack, "--include", include, allow_missing=allow_missing)
    check_patterns(stack, "--reset-lock", reset_lock, allow_missing=allow_missing)
    if allow_missing and not accept_missing_wheels and not check:
        ui.warn(
            "--allow-missing now means what it means in venvstacks (a pattern matching no"
            " layer is no error); for this release it also still accepts packages without"
            " wheels, which is --accept-missing-wheels from now on"
        )
        accept_missing_wheels = True

    def operations(_name: str, valid: bool) -> tuple[str, ...]:
        return () if check or (if_needed and valid) else ("lock",)

    if _shown(stack, include, show, show_only, operations):
        return
    with live("locking"):
        results = lock_stack(
            stack, include=include, if_needed=if_needed, reset_lock=reset_lock,
            allow_missing=accept_missing_wheels, local_wheels=local_wheels,
            no_index=not index, report=ui.info, check_only=check,
        )  # fmt: skip
    layers = lock_layers(results, check=check)
    stale = [layer["name"] for layer in layers if layer["action"] == "stale"]
    emit("lock", {"spec": str(stack.path), "check": check, "ok": not stale, "layers": layers},
         lock_lines(layers))  # fmt: skip
    if stale:
        ui.error(f"stale locks: {', '.join(stale)}; run `venvlayers lock {stack.path}`")
        raise SystemExit(1)


def publish_options(func: Callable[..., None]) -> Callable[..., None]:
    func = output_dir_option("_artifacts")(func)
    func = click.option(
        "--format", "fmt", type=RegistryChoice(archive_formats), default="tar.zst",
        show_default=True, help="Archive format.",
    )(func)  # fmt: skip
    func = click.option(
        "--tag-outputs", is_flag=True,
        help="Name archives <install_target>-<platform>-<archive_build>.<ext>.",
    )(func)  # fmt: skip
    func = click.option(
        "--delta-from", type=UserPath(folder=True, exists=True), metavar="OLD",
        help="Also write, for each layer an earlier output OLD holds, a delta archive with"
        " only what that version lacks (see docs/deploying.md).",
    )(func)  # fmt: skip
    func = click.option(
        "--sign-key", type=UserPath(exists=True), metavar="KEY",
        help="Sign the stack metadata with this SSH key (a private key file, or a public key"
        " whose private half ssh-keygen reaches through the agent); see docs/supply-chain.md.",
    )(func)  # fmt: skip
    return click.option(
        "--force", is_flag=True, help="Write archives even when an unchanged one exists."
    )(func)


def build_options(func: Callable[..., None]) -> Callable[..., None]:
    func = build_dir_option(func)
    func = click.option(
        "--runtime-source", type=RegistryChoice(runtime_sources),
        help="Where runtimes come from, for every runtime layer"
        " (default: each layer's 'source', or $VENVLAYERS_RUNTIME_SOURCE).",
    )(func)  # fmt: skip
    func = click.option(
        "--lock-if-needed", "--lock", "lock_if_needed", is_flag=True,
        help="Lock layers without a valid lock first (--lock: venvstacks' old name).",
    )(func)  # fmt: skip
    return click.option(
        "--clean", is_flag=True, help="Rebuild the selected layers even if they are up to date."
    )(func)


def publish_settings(
    stack: StackSpec, output_dir: Path | None, fmt: str, tag_outputs: bool, force: bool,
    dry_run: bool = False, frozen: bool = False, sign_key: Path | None = None,
    delta_from: Path | None = None, bytecode: bool = False,
) -> pipeline.PublishSettings:  # fmt: skip
    from venvlayers import pipeline

    return pipeline.PublishSettings(
        output_dir=spec_folder(stack, output_dir, "--output-dir"), fmt=fmt,
        tag_outputs=tag_outputs, force=force, dry_run=dry_run, frozen=frozen, sign_key=sign_key,
        delta_from=delta_from, bytecode=bytecode,
    )  # fmt: skip


@click.command()
@spec_argument
@include_option
@allow_missing_option
@build_options
@click.option(
    "--frozen",
    is_flag=True,
    help="Build from the locks as they are: never lock, fail if one is missing.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Layers built at once.",
)
@click.option("--publish", is_flag=True, help="Publish the archives after building.")
@publish_options
@show_options
@venvstacks_selection_flags("lock", "build", "publish")
@output_options
def build(
    spec: Path, include: tuple[str, ...], allow_missing: bool, build_dir: Path | None,
    runtime_source: str | None, lock_if_needed: bool, clean: bool, frozen: bool, jobs: int,
    publish: bool, output_dir: Path | None, fmt: str, tag_outputs: bool, sign_key: Path | None,
    delta_from: Path | None, force: bool, show: bool, show_only: bool,
) -> None:  # fmt: skip
    """Build the layers of SPEC from their locks into the build folder.

    Layers whose inputs are unchanged are not rebuilt. With --publish, the
    archives are written afterwards as `venvlayers publish` would.
    """
    from venvlayers import pipeline

    if frozen and lock_if_needed:
        raise click.UsageError("--frozen never locks; leave out --lock-if-needed")
    stack = load(spec)
    check_patterns(stack, "--include", include, allow_missing=allow_missing)

    def operations(_name: str, valid: bool) -> tuple[str, ...]:
        locking = ("lock-if-needed",) if lock_if_needed and not valid else ()
        return (*locking, "build", *(("publish",) if publish else ()))

    if _shown(stack, include, show, show_only, operations):
        return
    settings = pipeline.BuildSettings(
        build_dir=spec_folder(stack, build_dir, "--build-dir"), include=include, clean=clean,
        runtime_source=runtime_source, jobs=jobs, lock_if_needed=lock_if_needed, frozen=frozen,
    )  # fmt: skip
    started = time.monotonic()
    with live("building") as display:
        built = pipeline.build(stack, settings, report=ui.info)
        doc = {"spec": str(stack.path), **build_doc(built)}
        published = None
        if publish:
            published = pipeline.publish(
                stack, built.build_dir,
                publish_settings(
                    stack, output_dir, fmt, tag_outputs, force, frozen=frozen, sign_key=sign_key,
                    delta_from=delta_from,
                ),
                include=include, report=ui.info, progress=display.archiving if display.enabled else None,
            )  # fmt: skip
    lines = build_lines(doc)
    if published is not None:
        doc["published"] = publish_doc(published)
        lines += publish_lines(doc["published"])
    emit("build", {**doc, "seconds": round(time.monotonic() - started, 3)}, lines)


@click.command()
@spec_argument
@include_option
@allow_missing_option
@publish_options
@build_dir_option
@click.option(
    "--dry-run", is_flag=True, help="Print the metadata that would be written; write nothing."
)
@click.option(
    "--bytecode", is_flag=True,
    help="Ship each layer's bytecode in its archive (reproducible unchecked-hash .pyc files,"
    " compiled by the layer's own Python): deploy then compiles nothing. Archives grow by"
    " the compressed bytecode (1.6% for a torch stack); see docs/archives.md.",
)  # fmt: skip
@show_options
@venvstacks_selection_flags("publish")
@output_options
def publish(
    spec: Path, include: tuple[str, ...], allow_missing: bool, output_dir: Path | None,
    fmt: str, tag_outputs: bool, sign_key: Path | None, delta_from: Path | None, force: bool,
    build_dir: Path | None, dry_run: bool, bytecode: bool, show: bool, show_only: bool,
) -> None:  # fmt: skip
    """Write one reproducible archive per built layer of SPEC, plus the stack metadata.

    An unchanged layer keeps its archive; the metadata goes to
    __venvstacks__/venvstacks.json and __venvstacks__/env_metadata/. On a
    terminal, each layer's bar counts the bytes read; the result gives each
    archive's compressed size.
    """
    from venvlayers import pipeline
    from venvlayers.build import default_build_dir

    stack = load(spec)
    check_patterns(stack, "--include", include, allow_missing=allow_missing)
    if _shown(stack, include, show, show_only, lambda _n, _v: ("publish",)):
        return
    settings = publish_settings(
        stack, output_dir, fmt, tag_outputs, force, dry_run, sign_key=sign_key,
        delta_from=delta_from, bytecode=bytecode,
    )  # fmt: skip
    build_dir = spec_folder(stack, build_dir, "--build-dir") or default_build_dir(stack)
    started = time.monotonic()
    with live("publishing") as display:
        published = pipeline.publish(
            stack, build_dir, settings, include=include, report=ui.info,
            progress=display.archiving if display.enabled else None,
        )  # fmt: skip
    doc = publish_doc(published)
    if dry_run:
        # The plan is the result, with or without --json (as it always was).
        ui.emit_json({"command": "publish", **doc})
        return
    emit("publish", {"spec": str(stack.path), **doc,
                     "seconds": round(time.monotonic() - started, 3)}, publish_lines(doc))  # fmt: skip


@click.command("local-export")
@spec_argument
@include_option
@allow_missing_option
@output_dir_option("_export")
@build_dir_option
@show_options
@venvstacks_selection_flags("publish")
@output_options
def local_export(
    spec: Path, include: tuple[str, ...], allow_missing: bool, output_dir: Path | None,
    build_dir: Path | None, show: bool, show_only: bool,
) -> None:  # fmt: skip
    """Copy the built layers of SPEC into a folder and make them ready, as a deploy would.

    The folder is a deployment like any other: `venvlayers run`, `verify` and
    `gc` work on it.
    """
    from venvlayers import pipeline
    from venvlayers.build import default_build_dir

    stack = load(spec)
    check_patterns(stack, "--include", include, allow_missing=allow_missing)
    if _shown(stack, include, show, show_only, lambda _n, _v: ("export",)):
        return
    started = time.monotonic()
    with live("exporting"):
        result, apps = pipeline.export(
            stack,
            build_dir=spec_folder(stack, build_dir, "--build-dir") or default_build_dir(stack),
            output_dir=spec_folder(stack, output_dir, "--output-dir") or stack.spec_dir / "_export",
            include=include,
            report=ui.info,
        )
    doc = export_doc(result, apps)
    lines = [f"{layer['name']}: exported to {layer['path']}" for layer in doc["layers"]]
    emit("local-export", {"spec": str(stack.path), **doc,
                          "seconds": round(time.monotonic() - started, 3)}, lines)  # fmt: skip


@click.command()
@spec_argument
@click.option("--target", "-t", required=True, type=UserPath(folder=True),
              help="The folder the layers are deployed into.")  # fmt: skip
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
@output_options
def up(
    spec: Path, target: Path, build_dir: Path | None, runtime_source: str | None,
    lock_if_needed: bool, clean: bool, output_dir: Path | None, fmt: str, tag_outputs: bool,
    sign_key: Path | None, delta_from: Path | None, force: bool, run_apps: tuple[str, ...],
    no_run: bool, run_timeout: float,
) -> None:  # fmt: skip
    """Lock (if needed), build, publish and deploy SPEC into --target, then smoke-run the apps.

    The whole pipeline in one command; each step skips work that is already done. Each
    app (or each --run APP) then runs once with no arguments and no input: it must exit
    with status 0, or still be running after --run-timeout seconds (a service), when it is
    stopped. `up` always returns by itself; exit status 1 when an app failed.
    """
    from venvlayers import pipeline
    from venvlayers.cli_report import deploy_doc

    stack = load(spec)
    started = time.monotonic()
    with live("up") as display:
        done = pipeline.up(
            stack,
            target,
            build_settings=pipeline.BuildSettings(
                build_dir=spec_folder(stack, build_dir, "--build-dir"),
                clean=clean,
                runtime_source=runtime_source,
            ),
            publish_settings=publish_settings(
                stack,
                output_dir,
                fmt,
                tag_outputs,
                force,
                sign_key=sign_key,
                delta_from=delta_from,
            ),
            run_settings=pipeline.RunSettings(
                apps=run_apps,
                time_limit=run_timeout,
                enabled=not no_run,
                output_to_stderr=ui.settings.json,
            ),
            report=ui.info,
            on_run=lambda name: ui.info(f"$ venvlayers run {target} {name}"),
            progress=display.archiving if display.enabled else None,
            deploy_progress=display if display.enabled else None,
        )
    seconds = time.monotonic() - started
    runs = runs_doc(done.runs, run_timeout)
    results, errors = run_lines(runs)
    ok = all(run["ok"] for run in runs)
    doc = {
        "spec": str(stack.path), "target": str(target), "ok": ok,
        "build": build_doc(done.built), "publish": publish_doc(done.published),
        "deploy": deploy_doc(done.published.output_dir, target, done.deployed, seconds),
        "runs": runs, "seconds": round(seconds, 3),
    }  # fmt: skip
    emit("up", doc, [f"deployed {len(done.deployed.apps)} apps into {target}", *results])
    for line in errors:
        ui.error(line)
    if not ok:
        raise SystemExit(1)


COMMANDS = (show, lock, build, publish, local_export, up)
