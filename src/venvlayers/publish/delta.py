"""Delta archives (`publish --delta-from OLD`): per layer, only what its earlier version lacks.

For each layer whose earlier version the output folder OLD holds (matched by layer name,
so a versioned layer's new version finds its predecessor), a delta archive carries the
files whose content the earlier version lacks, the new layer's whole manifest and the list
of removed paths. The stack metadata records it beside the full archive (size, sha256, the
sha256 of the archive it applies to and of the new manifest); deploy uses it when the
target holds the base, and the full archive otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvlayers.contract import (
    MANIFESTS_DIR,
    DeltaFields,
    LayerPublication,
    read_stack_metadata,
)
from venvlayers.contract.delta import DELTA_DESCRIPTOR, DeltaDescriptor, delta_content
from venvlayers.publish.archive import ArchiveRequest, write_layer_archives
from venvlayers.publish.formats import FORMATS


@dataclass(frozen=True)
class OldOutput:
    """What an earlier output holds, read before this publish writes anything (OLD may be
    the very folder being published into)."""

    folder: Path
    layers: dict[str, LayerPublication]  # by layer name, those with archives
    manifests: dict[str, bytes]  # by install target


def read_old_output(old_dir: Path) -> OldOutput:
    _, old_layers = read_stack_metadata(old_dir)
    layers = {layer.layer_name: layer for layer in old_layers if layer.archive is not None}
    manifests = {}
    for layer in layers.values():
        path = old_dir / MANIFESTS_DIR / f"{layer.install_target}.json"
        if path.is_file():
            manifests[layer.install_target] = path.read_bytes()
    return OldOutput(old_dir, layers, manifests)


@dataclass(frozen=True)
class DeltaPlan:
    install_target: str
    request: ArchiveRequest
    base: LayerPublication
    manifest_sha256: str


def plan_deltas(
    old: OldOutput,
    layers: Sequence[LayerPublication],
    manifests: Mapping[str, bytes],
    *,
    build_dir: Path,
    output_dir: Path,
    fmt: str,
    mtimes: Mapping[str, int],
    report: Callable[[str], None],
) -> list[DeltaPlan]:
    """One delta per layer that OLD holds an earlier, different version of."""
    plans = []
    for layer in layers:
        base = old.layers.get(layer.layer_name)
        if base is None or base.archive is None or layer.archive is None:
            continue
        base_sha = base.archive.archive_hashes["sha256"]
        if base_sha == layer.archive.archive_hashes["sha256"]:
            continue  # unchanged: a target holding it needs nothing
        old_manifest = old.manifests.get(base.install_target)
        if old_manifest is None:
            report(
                f"{layer.install_target}: no delta from {old.folder} (it holds no manifest of"
                f" {base.install_target}; publish it with this venvlayers to get one)"
            )
            continue
        new_manifest = manifests[layer.install_target]
        content = delta_content(old_manifest, new_manifest)
        descriptor = DeltaDescriptor(base.install_target, base_sha, content.removed)
        extension = FORMATS[fmt].extension
        name = f"{layer.install_target}.delta-{base_sha[:12]}{extension}"
        request = ArchiveRequest(
            layer_dir=build_dir / layer.install_target,
            dest=output_dir / name,
            root_name=layer.install_target,
            fmt=fmt,
            mtime=mtimes[layer.install_target],
            only=content.added,
            manifest=new_manifest,
            extra_files=((DELTA_DESCRIPTOR, descriptor.to_bytes()),),
        )
        plans.append(
            DeltaPlan(layer.install_target, request, base, hashlib.sha256(new_manifest).hexdigest())
        )
    return plans


def write_deltas(
    plans: Sequence[DeltaPlan], *, jobs: int | None, report: Callable[[str], None]
) -> dict[str, DeltaFields]:
    for plan in plans:
        report(f"{plan.install_target}: writing the delta from {plan.base.install_target}")
    results = write_layer_archives([plan.request for plan in plans], jobs=jobs)
    written = {}
    for plan, result in zip(plans, results, strict=True):
        assert plan.base.archive is not None
        written[plan.install_target] = DeltaFields(
            archive_name=result.path.name,
            archive_size=result.size,
            archive_sha256=result.sha256,
            base_install_target=plan.base.install_target,
            base_archive_sha256=plan.base.archive.archive_hashes["sha256"],
            manifest_sha256=plan.manifest_sha256,
        )
    return written
