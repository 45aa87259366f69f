"""``venvlayers deploy oci://... --target DIR``: fetch what the target lacks, then deploy.

The blobs go to ``DIR/.venvlayers/oci-cache/blobs/``, each checked against its digest
before use; a folder shaped like a published output is assembled beside them (hard links,
the stack metadata written by the contract) and handed to the usual deploy. Afterwards the
blobs of layers now in place are deleted: the deployed folder is the copy that counts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvlayers._fs import exclusive_lock
from venvlayers.contract import LayerKind, LayerPublication, read_stack_metadata
from venvlayers.contract import write_stack_metadata as write_metadata
from venvlayers.oci import media
from venvlayers.oci.client import DOCKER_LIST, OCI_INDEX, Counters, Registry, manifest_json
from venvlayers.oci.errors import OciError, OciInterrupted
from venvlayers.oci.ref import OciRef

if TYPE_CHECKING:
    from venvlayers.deploy import DeployResult

Report = Callable[[str], None]

# The deploy stage's state folder (docs/deploying.md); the cache lives inside it.
CACHE_DIR = Path(".venvlayers") / "oci-cache"


@dataclass(frozen=True)
class PullResult:
    deployed: DeployResult
    fetched: tuple[str, ...]  # install targets whose blob was downloaded now
    cached: tuple[str, ...]  # blob found whole in the cache (an earlier run fetched it)
    held: tuple[str, ...]  # already in the target from the same archive: not fetched
    counters: Counters


@dataclass(frozen=True)
class RemoteStack:
    ref: OciRef
    manifest_digest: str
    layers: tuple[LayerPublication, ...]
    blobs: dict[str, dict[str, Any]]  # digest -> descriptor


def fetch_stack(registry: Registry, ref: OciRef) -> RemoteStack:
    """The manifest and stack metadata at ``ref``, checked; nothing is written anywhere."""
    data, media_type, digest = registry.get_manifest(ref)
    manifest = manifest_json(data, str(ref))
    if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in manifest:
        raise OciError(f"{ref}: an image index, not a venvlayers stack; give the stack's tag")
    config = manifest.get("config")
    if (
        manifest.get("artifactType") != media.STACK_ARTIFACT
        or not isinstance(config, dict)
        or config.get("mediaType") != media.STACK_CONFIG
    ):
        found = manifest.get("artifactType") or (config or {}).get("mediaType") or "none"
        raise OciError(
            f"{ref}: not a venvlayers stack (artifact type {found}); push one with"
            " `venvlayers push OUTPUT {ref}`"
        )
    blob = registry.get_blob_bytes(ref.repository, str(config.get("digest")))
    with tempfile.TemporaryDirectory(prefix="venvlayers-oci-") as tmp:
        # The contract reads files: the metadata is checked exactly as a local one is.
        path = Path(tmp) / "venvstacks.json"
        path.write_bytes(blob)
        _root, layers = read_stack_metadata(path)
    entries = manifest.get("layers")
    blobs = {
        str(entry.get("digest")): entry
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict)
    }
    return RemoteStack(ref, digest, tuple(layers), blobs)


def needed_layers(stack: RemoteStack, apps: Sequence[str]) -> list[LayerPublication]:
    """The layers the apps named (all by default) use, checked against the manifest."""
    by_target = {layer.install_target: layer for layer in stack.layers}
    all_apps = [layer for layer in stack.layers if layer.kind is LayerKind.APPLICATION]
    chosen = all_apps
    if apps:
        chosen = []
        for name in apps:
            match = next((app for app in all_apps if name in _app_names(app)), None)
            if match is None:
                known = ", ".join(app.layer_name.removeprefix("app-") for app in all_apps)
                raise OciError(f"{stack.ref}: no app named {name!r} is published (apps: {known})")
            chosen.append(match)
    needed: dict[str, LayerPublication] = {}

    def visit(name: str, needed_by: str) -> None:
        layer = by_target.get(name)
        if layer is None:
            raise OciError(f"{stack.ref}: {needed_by} needs {name}, which is not published")
        if name in needed:
            return
        needed[name] = layer
        for lower in (layer.runtime_layer, *layer.required_layers):
            visit(lower, name)

    for app in chosen:
        visit(app.install_target, app.install_target)
    # Runtime first, as deploy readies them: its blob is the one to have earliest.
    kinds = [LayerKind.RUNTIME, LayerKind.FRAMEWORK, LayerKind.APPLICATION]
    ordered = sorted(needed.values(), key=lambda layer: kinds.index(layer.kind))
    for layer in ordered:
        if layer.archive is None:
            raise OciError(f"{stack.ref}: {layer.install_target} has no archive; push again")
        entry = stack.blobs.get("sha256:" + layer.archive.archive_hashes["sha256"])
        if entry is None or entry.get("size") != layer.archive.archive_size:
            raise OciError(
                f"{stack.ref}: the manifest lists no blob for {layer.install_target}"
                f" ({layer.archive.archive_name}); push the stack again"
            )
    return ordered


def _app_names(app: LayerPublication) -> tuple[str, ...]:
    short = app.layer_name.removeprefix(LayerKind.APPLICATION.build_prefix)
    return (short, app.layer_name, app.install_target)


def deploy_from_registry(
    ref: OciRef,
    target: Path,
    *,
    apps: Sequence[str] = (),
    compile_bytecode: bool = True,
    report: Report = lambda _m: None,
) -> PullResult:
    from venvlayers.deploy import deploy, held_archives

    registry = Registry(ref)
    stack = fetch_stack(registry, ref)
    needed = needed_layers(stack, apps)
    held = held_archives(target)
    to_fetch = [la for la in needed if held.get(la.install_target) != _sha(la)]
    cache = target / CACHE_DIR
    # Folders this run creates; on a refusal they go again, so the target is as it was.
    created = [p for p in (target, target / CACHE_DIR.parent, cache) if not p.exists()]
    new_blobs: list[Path] = []
    fetched: list[str] = []
    cached: list[str] = []
    source = cache / "source"
    try:
        with exclusive_lock(cache / "lock", on_wait=lambda: report(f"waiting for {cache}")):
            blobs = cache / "blobs" / "sha256"
            blobs.mkdir(parents=True, exist_ok=True)
            for layer in to_fetch:
                assert layer.archive is not None
                dest = blobs / _sha(layer)
                if dest.is_file() and dest.stat().st_size == layer.archive.archive_size:
                    cached.append(layer.install_target)
                    continue
                report(f"{layer.install_target}: fetching {layer.archive.archive_size} bytes")
                new_blobs.append(dest)
                registry.download_blob(
                    ref.repository, "sha256:" + _sha(layer), dest, size=layer.archive.archive_size
                )
                fetched.append(layer.install_target)
            shutil.rmtree(source, ignore_errors=True)
            source.mkdir()
            for layer in to_fetch:
                assert layer.archive is not None
                _link_or_copy(blobs / _sha(layer), source / layer.archive.archive_name)
            write_metadata(source, stack.layers)
            result = deploy(
                source, target, apps=apps, compile_bytecode=compile_bytecode, report=report
            )
            # In place now: the deployed folders are the copies that count.
            for layer in to_fetch:
                (blobs / _sha(layer)).unlink(missing_ok=True)
            shutil.rmtree(source, ignore_errors=True)
    except OciInterrupted:
        shutil.rmtree(source, ignore_errors=True)
        raise  # what arrived stays in the cache; the next run resumes it
    except BaseException:
        shutil.rmtree(source, ignore_errors=True)
        for path in new_blobs:
            path.unlink(missing_ok=True)
        _remove_if_created(created, cache)
        raise
    return PullResult(
        deployed=result,
        fetched=tuple(fetched),
        cached=tuple(cached),
        held=tuple(la.install_target for la in needed if la not in to_fetch),
        counters=registry.counters,
    )


def _sha(layer: LayerPublication) -> str:
    assert layer.archive is not None
    return layer.archive.archive_hashes["sha256"]


def _link_or_copy(blob: Path, dest: Path) -> None:
    try:
        os.link(blob, dest)
    except OSError:
        shutil.copyfile(blob, dest)


def _remove_if_created(created: list[Path], cache: Path) -> None:
    """Remove the folders this run made, if nothing else arrived in them meanwhile."""
    if cache in created:
        for leftover in ("blobs/sha256", "blobs"):
            with contextlib.suppress(OSError):
                (cache / leftover).rmdir()
        (cache / "lock").unlink(missing_ok=True)
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()
