"""The commands that work on a deployment folder: deploy, run, verify, remove and gc.

A folder written by `local-export` is a deployment like any other for these.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from venvlayers import environment, ui
from venvlayers.cli_oci import OciRef, PathOrOciRef, deploy_from_oci
from venvlayers.cli_options import output_options
from venvlayers.cli_params import UserPath
from venvlayers.cli_progress import live
from venvlayers.cli_report import deploy_doc, deploy_lines, emit, removed_doc
from venvlayers.errors import VenvLayersError

# `run`'s own status when it cannot start the app (no such app, a layer missing, a bad
# folder): apart from anything the app itself returns in practice (as `docker run` does).
RUN_CANNOT_START = 125

deployment_folder = click.argument("target", type=UserPath(folder=True, exists=True), metavar="DIR")


@click.command()
@click.argument("source", type=PathOrOciRef(), metavar="SOURCE")
@click.option("--target", "-t", required=True, type=UserPath(folder=True),
              help="The folder the layers are deployed into.")  # fmt: skip
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
@click.option(
    "--require-signature", type=UserPath(exists=True), metavar="ALLOWED_SIGNERS",
    help="Refuse output not signed by a key in this OpenSSH allowed-signers file; the target"
    " keeps it and requires it of every later deploy (docs/supply-chain.md).",
)  # fmt: skip
@click.option(
    "--link-mode", type=click.Choice(["auto", "hardlink", "reflink", "copy"]), default="auto",
    show_default=True, help="How layer files are made from the target's content store"
    " (docs/deploying.md).",
)  # fmt: skip
@output_options
def deploy(
    source: Path | OciRef,
    target: Path,
    apps: tuple[str, ...],
    compile_bytecode: bool,
    require_signature: Path | None,
    link_mode: str,
) -> None:
    """Deploy apps from a published output folder SOURCE into --target.

    Archives are checked against the metadata while they are unpacked beside their
    final place, made ready by postinstall.py from the runtime upward, then moved into
    place; a refused archive takes the whole deploy back. Layers already deployed with
    the same hash are skipped. On a terminal, each layer's line shows its step and the
    bytes unpacked, then the byte-compiling count.
    """
    from venvlayers.deploy import deploy as deploy_stack

    if not isinstance(source, Path):  # oci://: fetch what the target lacks, then deploy
        return deploy_from_oci(source, target, apps, compile_bytecode, require_signature, link_mode)
    started = time.monotonic()
    with live("deploying") as display:
        result = deploy_stack(
            source, target, apps=apps, report=ui.info,
            compile_bytecode=compile_bytecode and not environment.current().no_compile,
            progress=display if display.enabled else None,
            require_signature=require_signature, link_mode=link_mode,
        )  # fmt: skip
    doc = deploy_doc(source, target, result, time.monotonic() - started)
    doc.update(link_mode=result.link_mode, sources=result.sources)
    store = [f"layer files from the content store: {result.link_mode}"] if result.link_mode else []
    emit("deploy", doc, [*deploy_lines(doc), *store])


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@output_options
@deployment_folder
@click.argument("name", metavar="APP")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(target: Path, name: str, args: tuple[str, ...]) -> None:
    """Run the deployed app APP from DIR with ARGS; its exit status is passed through.

    APP is the app's name in the spec, its layer name or its install target.
    Naming a runtime or framework layer runs that layer's python with ARGS.
    DIR may be a deployment or a `local-export` folder. When the app cannot be
    started (no such app, a layer missing), the status is 125. Options for
    venvlayers go before DIR; everything after APP goes to the app.
    """
    from venvlayers.deploy import run_app

    # Click keeps the `--` that separates the app's own arguments; the app must not see it.
    app_args = list(args[1:] if args[:1] == ("--",) else args)
    try:
        status = run_app(target, name, app_args)
    except (VenvLayersError, OSError) as exc:
        if ui.settings.tracebacks:
            ui.print_exception()
        ui.error(str(exc) if isinstance(exc, VenvLayersError) else f"cannot start {name}: {exc}")
        raise SystemExit(RUN_CANNOT_START) from None
    raise SystemExit(status)


@click.command()
@deployment_folder
@click.argument("apps", nargs=-1, metavar="[APP]...")
@output_options
def verify(target: Path, apps: tuple[str, ...]) -> None:
    """Compare the files deployed in DIR with each layer's manifest.

    Reports changed, missing and unexpected files; exit status 1 on any drift.
    """
    from venvlayers.deploy import verify as verify_target

    report = verify_target(target, apps)
    if ui.settings.json:
        ui.emit_json({"command": "verify", **report.to_json()})
    else:
        ui.result(report.render())
    if not report.ok:
        raise SystemExit(1)


@click.command()
@deployment_folder
@click.argument("apps", nargs=-1, required=True, metavar="APP...")
@output_options
def remove(target: Path, apps: tuple[str, ...]) -> None:
    """Remove deployed apps from DIR, and the layers no remaining app needs."""
    from venvlayers.deploy import gc as collect
    from venvlayers.deploy import remove_apps

    removed = [(name, "removed", "app removed") for name in remove_apps(target, apps)]
    removed += [(name, "removed", "no app uses it") for name in collect(target)]
    lines = [f"{name}: removed" + ("" if why == "app removed" else f" ({why})")
             for name, _, why in removed]  # fmt: skip
    emit("remove", removed_doc(target, removed), lines)


@click.command()
@deployment_folder
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@output_options
def gc(target: Path, dry_run: bool) -> None:
    """Remove the layers in DIR that no deployed app uses."""
    from venvlayers.deploy import gc as collect

    action = "would be removed" if dry_run else "removed"
    removed = [(name, action, "no app uses it") for name in collect(target, dry_run=dry_run)]
    lines = [f"{name}: {action}" for name, _, _ in removed] or ["nothing to remove"]
    emit("gc", removed_doc(target, removed, dry_run=dry_run), lines)


COMMANDS = (deploy, run, verify, remove, gc)
