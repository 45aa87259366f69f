"""``venvlayers deploy oci://... --target DIR``: fetch what the target lacks, then deploy.

The blobs go to ``DIR/.venvlayers/oci-cache/blobs/``, each checked against its digest
before use; a folder shaped like a published output is assembled beside them (hard links,
the stack metadata as the bytes pushed, its signature, and each new layer's SBOM, manifest
and env_metadata file) and handed to the usual deploy, which checks all of it as it checks
a folder. A layer whose delta applies to what the target holds gets only the delta.
Afterwards the blobs are deleted: the deployed folder is the copy that counts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvlayers._fs import exclusive_lock
from venvlayers.contract import (
    LAYER_METADATA_DIR,
    MANIFESTS_DIR,
    SBOM_DIR,
    STACK_METADATA,
    DeltaFields,
    LayerKind,
    LayerPublication,
    read_stack_metadata,
)
from venvlayers.contract.signature import SIGNATURE
from venvlayers.errors import VenvLayersError
from venvlayers.oci import media
from venvlayers.oci.client import DOCKER_LIST, OCI_INDEX, Counters, Registry, manifest_json
from venvlayers.oci.errors import OciError, OciInterrupted
from venvlayers.oci.ref import OciRef

if TYPE_CHECKING:
    from venvlayers.deploy import DeployResult

Report = Callable[[str], None]

# The deploy stage's state folder (docs/deploying.md); the cache lives inside it.
CACHE_DIR = Path(".venvlayers") / "oci-cache"
# A digest becomes a file name in the cache: only the one form is taken from a manifest.
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
# Signatures, SBOMs, manifests and env_metadata files: a larger one is not believed.
_SIDECAR_LIMIT = 64 << 20


@dataclass(frozen=True)
class PullResult:
    deployed: DeployResult
    fetched: tuple[str, ...]  # install targets whose blob was downloaded now
    cached: tuple[str, ...]  # blob found whole in the cache (an earlier run fetched it)
    held: tuple[str, ...]  # already in the target from the same archive: not fetched
    counters: Counters
    deltas: tuple[str, ...] = ()  # install targets fetched as a delta, not the full archive
    bytes_saved: int = 0  # full archive bytes not fetched thanks to those deltas
    files: tuple[str, ...] = ()  # the other files given to deploy (signature, SBOMs, ...)


@dataclass(frozen=True)
class RemoteStack:
    ref: OciRef
    manifest_digest: str
    layers: tuple[LayerPublication, ...]
    blobs: dict[str, dict[str, Any]]  # digest -> descriptor
    metadata: bytes = b""  # venvstacks.json exactly as pushed (a signature covers them)
    entries: tuple[dict[str, Any], ...] = ()  # every descriptor of ``layers[]``, in order

    def find(
        self, media_type: str, *, digest: str | None = None, install_target: str | None = None
    ) -> dict[str, Any] | None:
        """The first entry of that type (and digest, and layer) that is well formed."""
        for entry in self.entries:
            annotations = entry.get("annotations")
            if (
                entry.get("mediaType") == media_type
                and (digest is None or entry.get("digest") == digest)
                and (
                    install_target is None
                    or (
                        isinstance(annotations, dict)
                        and annotations.get(media.INSTALL_TARGET) == install_target
                    )
                )
                and _DIGEST.fullmatch(str(entry.get("digest")))
                and isinstance(entry.get("size"), int)
            ):
                return entry
        return None


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
    listed = manifest.get("layers")
    entries = tuple(e for e in (listed if isinstance(listed, list) else []) if isinstance(e, dict))
    blobs = {str(entry.get("digest")): entry for entry in entries}
    return RemoteStack(ref, digest, tuple(layers), blobs, blob, entries)


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


@dataclass(frozen=True)
class _Want:
    """One blob to place in the assembled folder."""

    digest: str  # sha256:<hex>, checked as it downloads
    size: int
    path: str  # where in the assembled folder
    install_target: str | None = None  # the layer, for an archive or a delta
    delta: DeltaFields | None = None

    @property
    def hexdigest(self) -> str:
        return self.digest.removeprefix("sha256:")


def plan_files(
    stack: RemoteStack, to_fetch: Sequence[LayerPublication], held: dict[str, str]
) -> list[_Want]:
    """What the assembled folder gets: the signature, then per new layer a delta whose base
    the target holds (else the full archive), its SBOM, manifest and env_metadata file.

    Deploy checks each as it checks a folder: the signature against the metadata bytes,
    deltas, SBOMs and bound manifests by the sha256 the metadata gives, env_metadata
    files against the index. Files the manifest does not list are left out, as a folder
    without them would be.
    """
    wants = []
    signature = stack.find(media.SIGNATURE)
    if signature is not None:
        wants.append(_sidecar(stack, signature, SIGNATURE))
    holds = set(held.values())
    for layer in to_fetch:
        name = layer.install_target
        delta = next((d for d in layer.deltas if _delta_listed(stack, d, holds)), None)
        if delta is not None:
            wants.append(
                _Want(f"sha256:{delta.archive_sha256}", delta.archive_size, delta.archive_name,
                      name, delta)
            )  # fmt: skip
        else:
            assert layer.archive is not None
            wants.append(
                _Want(f"sha256:{_sha(layer)}", layer.archive.archive_size,
                      layer.archive.archive_name, name)
            )  # fmt: skip
        if layer.sbom is not None:
            found = stack.find(media.SBOM, digest=f"sha256:{layer.sbom.sha256}")
            if found is not None:
                wants.append(_sidecar(stack, found, f"{SBOM_DIR}/{layer.sbom.name}"))
        bound = [f"sha256:{d.manifest_sha256}" for d in layer.deltas]
        found = next(
            (e for d in bound if (e := stack.find(media.LAYER_MANIFEST, digest=d))), None
        ) or stack.find(media.LAYER_MANIFEST, install_target=name)
        if found is not None:
            wants.append(_sidecar(stack, found, f"{MANIFESTS_DIR}/{name}.json"))
        found = stack.find(media.LAYER_METADATA, install_target=name)
        if found is not None:
            wants.append(_sidecar(stack, found, f"{LAYER_METADATA_DIR}/{name}.json"))
    return wants


def _delta_listed(stack: RemoteStack, delta: DeltaFields, holds: set[str]) -> bool:
    if delta.base_archive_sha256 not in holds:
        return False
    entry = stack.find(media.layer_media_type(delta.archive_name, delta=True),
                       digest=f"sha256:{delta.archive_sha256}")  # fmt: skip
    return entry is not None and entry["size"] == delta.archive_size


def _sidecar(stack: RemoteStack, entry: dict[str, Any], path: str) -> _Want:
    size = int(entry["size"])
    if not 0 <= size <= _SIDECAR_LIMIT:
        raise OciError(
            f"{stack.ref}: the manifest lists {path} with {size} bytes; refused (at most"
            f" {_SIDECAR_LIMIT})"
        )
    return _Want(str(entry["digest"]), size, path)


def deploy_from_registry(
    ref: OciRef,
    target: Path,
    *,
    apps: Sequence[str] = (),
    compile_bytecode: bool = True,
    require_signature: Path | None = None,
    link_mode: str = "auto",
    report: Report = lambda _m: None,
) -> PullResult:
    from venvlayers.deploy import held_archives

    registry = Registry(ref)
    stack = fetch_stack(registry, ref)
    needed = needed_layers(stack, apps)
    held = held_archives(target)
    to_fetch = [la for la in needed if held.get(la.install_target) != _sha(la)]
    wants = plan_files(stack, to_fetch, held)
    cache = target / CACHE_DIR
    # Folders this run creates; on a refusal they go again, so the target is as it was.
    created = [p for p in (target, target / CACHE_DIR.parent, cache) if not p.exists()]
    run = _Run(registry, ref, cache / "blobs" / "sha256", report)
    source = cache / "source"

    def deploy_source() -> DeployResult:
        from venvlayers.deploy import deploy

        try:
            return deploy(
                source, target, apps=apps, compile_bytecode=compile_bytecode, report=report,
                require_signature=require_signature, link_mode=link_mode,
            )  # fmt: skip
        except VenvLayersError as exc:
            # The assembled folder is gone once this returns: name what the user gave.
            raise type(exc)(str(exc).replace(str(source), str(ref))) from None

    try:
        with exclusive_lock(cache / "lock", on_wait=lambda: report(f"waiting for {cache}")):
            run.blobs.mkdir(parents=True, exist_ok=True)
            run.fetch(wants)
            shutil.rmtree(source, ignore_errors=True)
            (source / STACK_METADATA).parent.mkdir(parents=True)
            # The bytes as pushed: a signature covers them, a rendering of them may differ.
            (source / STACK_METADATA).write_bytes(stack.metadata)
            run.place(wants, source)
            deltas = [want for want in wants if want.delta is not None]
            try:
                result = deploy_source()
            except VenvLayersError as exc:
                fallback = _full_archives(stack, deltas)
                named = [w.path for w in [*deltas, *fallback]]
                if not any(name in str(exc) for name in named):
                    raise
                # The deploy stage refused a delta it was given alone, before changing
                # anything: give it the full archives and let it choose again.
                report(f"{exc}; fetching the full archives instead")
                run.fetch(fallback)
                run.place(fallback, source)
                wants += fallback
                deltas = []
                result = deploy_source()
            # In place now: the deployed folders are the copies that count.
            for want in wants:
                (run.blobs / want.hexdigest).unlink(missing_ok=True)
            shutil.rmtree(source, ignore_errors=True)
    except OciInterrupted:
        shutil.rmtree(source, ignore_errors=True)
        raise  # what arrived stays in the cache; the next run resumes it
    except BaseException:
        shutil.rmtree(source, ignore_errors=True)
        for path in run.new_blobs:
            path.unlink(missing_ok=True)
        _remove_if_created(created, cache)
        raise
    used = [want for want in deltas if result.sources.get(str(want.install_target)) == "delta"]
    return PullResult(
        deployed=result,
        fetched=tuple(run.fetched),
        cached=tuple(run.cached),
        held=tuple(la.install_target for la in needed if la not in to_fetch),
        counters=registry.counters,
        deltas=tuple(str(want.install_target) for want in used),
        bytes_saved=sum(_full_size(stack, want) - want.size for want in used),
        files=tuple(want.path for want in wants if want.install_target is None),
    )


class _Run:
    """The downloads of one deploy, into the cache: what was fetched now, what was there."""

    def __init__(self, registry: Registry, ref: OciRef, blobs: Path, report: Report) -> None:
        self.registry, self.ref, self.blobs, self.report = registry, ref, blobs, report
        self.new_blobs: list[Path] = []
        self.fetched: list[str] = []  # install targets whose archive or delta came now
        self.cached: list[str] = []

    def fetch(self, wants: Sequence[_Want]) -> None:
        for want in wants:
            dest = self.blobs / want.hexdigest
            label = want.install_target or want.path
            if dest.is_file() and dest.stat().st_size == want.size:
                if want.install_target is not None:
                    self.cached.append(want.install_target)
                continue
            if want.install_target is not None:
                kind = "delta" if want.delta is not None else "archive"
                self.report(f"{label}: fetching its {kind} ({want.size} bytes)")
            self.new_blobs.append(dest)
            self.registry.download_blob(self.ref.repository, want.digest, dest, size=want.size)
            if want.install_target is not None:
                self.fetched.append(want.install_target)

    def place(self, wants: Sequence[_Want], source: Path) -> None:
        for want in wants:
            dest = source / want.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(self.blobs / want.hexdigest, dest)


def _full_archives(stack: RemoteStack, deltas: Sequence[_Want]) -> list[_Want]:
    by_target = {layer.install_target: layer for layer in stack.layers}
    full = []
    for want in deltas:
        layer = by_target[str(want.install_target)]
        assert layer.archive is not None
        full.append(
            _Want(f"sha256:{_sha(layer)}", layer.archive.archive_size,
                  layer.archive.archive_name, layer.install_target)
        )  # fmt: skip
    return full


def _full_size(stack: RemoteStack, want: _Want) -> int:
    layer = next(la for la in stack.layers if la.install_target == want.install_target)
    assert layer.archive is not None
    return layer.archive.archive_size


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
