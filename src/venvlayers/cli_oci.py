"""Commands for registries: `push`, `image`, and the oci:// source of `deploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from venvlayers import ui
from venvlayers.cli_options import output_options
from venvlayers.cli_params import UserPath
from venvlayers.cli_report import emit
from venvlayers.oci import OciRef

__all__ = ["OciRef", "PathOrOciRef", "deploy_from_oci", "register"]


class OciRefParam(click.ParamType):  # type: ignore[type-arg]
    name = "oci://HOST/REPO[:TAG]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from venvlayers.oci import OciError, parse_oci_ref

        if isinstance(value, OciRef):
            return value
        try:
            return parse_oci_ref(str(value))
        except OciError as exc:
            self.fail(str(exc), param, ctx)


class PathOrOciRef(UserPath):
    """A folder, or an ``oci://`` reference, which is no path and bypasses path resolution."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.startswith("oci://"):
            return OciRefParam().convert(value, param, ctx)
        return super().convert(value, param, ctx)


def deploy_from_oci(
    ref: OciRef,
    target: Path,
    apps: tuple[str, ...],
    compile_bytecode: bool,
    require_signature: Path | None = None,
    link_mode: str = "auto",
) -> None:
    from venvlayers.oci import deploy_from_registry

    pulled = deploy_from_registry(
        ref, target, apps=apps, compile_bytecode=compile_bytecode,
        require_signature=require_signature, link_mode=link_mode, report=ui.info,
    )  # fmt: skip
    counters = pulled.counters
    doc = {
        "source": str(ref),
        "target": str(target),
        "deployed": list(pulled.deployed.deployed),
        "skipped": list(pulled.deployed.skipped),
        "sources": pulled.deployed.sources,
        "fetched": list(pulled.fetched),
        "deltas": list(pulled.deltas),
        "files": list(pulled.files),
        "bytes_fetched": counters.bytes_down,
        "bytes_saved_by_deltas": pulled.bytes_saved,
        "requests": counters.requests,
    }
    lines = [f"{name}: deployed" for name in pulled.deployed.deployed]
    lines += [f"{name}: already deployed" for name in pulled.deployed.skipped]
    lines.append(
        f"fetched {len(pulled.fetched)} layer blobs ({ui.size(counters.bytes_down)}) in"
        f" {counters.requests} requests; {len(pulled.held)} layers were already in place"
    )
    if pulled.deltas:
        lines.append(
            f"{len(pulled.deltas)} layers came as deltas, saving"
            f" {ui.size(pulled.bytes_saved)} of downloads"
        )
    emit("deploy", doc, lines)


@click.command()
@output_options
@click.argument("output", type=UserPath(exists=True, folder=True), metavar="OUTPUT")
@click.argument("ref", type=OciRefParam(), metavar="oci://HOST[:PORT]/REPO[:TAG]")
@click.option(
    "--mount-from",
    multiple=True,
    metavar="REPO",
    help="Another repository of the same registry to mount blobs from. Repeatable.",
)
def push(output: Path, ref: OciRef, mount_from: tuple[str, ...]) -> None:
    """Push the published OUTPUT folder to a registry: one blob per file.

    Layer and delta archives, the signature, SBOMs, layer manifests and
    env_metadata files; blobs the registry already holds are skipped. Without a TAG the tag is
    stack-<digest prefix of the stack metadata>, one per stack version.
    """
    from venvlayers.oci import push_output

    pushed = push_output(output, ref, mount_from=mount_from, report=ui.info)
    doc = {
        "ref": str(pushed.ref),
        "digest": pushed.digest,
        "blobs": {name: state for name, state in pushed.blobs},
        "bytes_uploaded": pushed.counters.bytes_up,
        "requests": pushed.counters.requests,
    }
    uploaded = [name for name, state in pushed.blobs if state == "uploaded"]
    lines = [f"{name}: {state}" for name, state in pushed.blobs]
    lines.append(
        f"pushed {pushed.ref}@{pushed.digest}: {len(uploaded)} of {len(pushed.blobs)}"
        f" blobs uploaded ({ui.size(pushed.counters.bytes_up)})"
    )
    emit("push", doc, lines)


@click.command()
@output_options
@click.argument("output", type=UserPath(exists=True, folder=True), metavar="OUTPUT")
@click.argument("app", metavar="APP")
@click.option("--base", required=True, type=OciRefParam(), help="The base image (oci://...).")
@click.option("--push", "push_ref", type=OciRefParam(), help="Push the image to this oci:// tag.")
@click.option(
    "--output", "layout_dir", type=UserPath(folder=True), help="Write an OCI image layout here."
)
def image(
    output: Path, app: str, base: OciRef, push_ref: OciRef | None, layout_dir: Path | None
) -> None:
    """Build an OCI image that runs APP from the published OUTPUT, on --base.

    One image layer per venvlayers layer under /opt/venvlayers/<install_target>,
    runtime first; the same layer gives the same image layer in every image.
    """
    from venvlayers.oci import build_image

    if (push_ref is None) == (layout_dir is None):
        raise click.UsageError("give exactly one of --push oci://... or --output DIR")
    built = build_image(output, app, base, push=push_ref, layout_dir=layout_dir, report=ui.info)
    where = str(built.ref) if built.ref is not None else str(built.output)
    doc = {"digest": built.digest, "where": where, "layers": dict(built.layers)}
    lines = [f"{name}: {digest}" for name, digest in built.layers]
    lines.append(f"image {built.digest} -> {where}")
    emit("image", doc, lines)


def register(cli: click.Group) -> None:
    cli.add_command(push)
    cli.add_command(image)
