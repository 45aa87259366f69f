"""``venvlayers push OUTPUT oci://...``: a published output as one registry artifact."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers.contract import LayerKind, LayerPublication, read_stack_metadata, stack_index
from venvlayers.oci import media
from venvlayers.oci.client import OCI_MANIFEST, Counters, Registry, digest_of
from venvlayers.oci.errors import OciError
from venvlayers.oci.ref import OciRef

Report = Callable[[str], None]


@dataclass(frozen=True)
class PushResult:
    ref: OciRef  # with the tag pushed
    digest: str  # of the manifest
    blobs: tuple[tuple[str, str], ...]  # (archive name, present / mounted / uploaded)
    counters: Counters


def canonical_json(data: Any) -> bytes:
    """Compact, key-sorted JSON: the same content always has the same digest."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def stack_config(layers: Sequence[LayerPublication]) -> bytes:
    """The config blob: the stack index, as the contract renders it."""
    return json.dumps(stack_index(layers), indent=2, sort_keys=True).encode() + b"\n"


def stack_manifest(layers: Sequence[LayerPublication], config: bytes) -> bytes:
    entries = []
    for layer in layers:
        archive = layer.archive
        assert archive is not None
        entries.append(
            {
                "mediaType": media.layer_media_type(archive.archive_name),
                "digest": "sha256:" + archive.archive_hashes["sha256"],
                "size": archive.archive_size,
                "annotations": {
                    media.TITLE: archive.archive_name,
                    media.INSTALL_TARGET: layer.install_target,
                    media.LAYER_KIND: layer.kind.value,
                },
            }
        )
    apps = [la.install_target for la in layers if la.kind is LayerKind.APPLICATION]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": media.STACK_ARTIFACT,
        "config": {
            "mediaType": media.STACK_CONFIG,
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": entries,
        "annotations": {media.STACK_APPS: ",".join(apps)},
    }
    return canonical_json(manifest)


def push_output(
    output: Path,
    ref: OciRef,
    *,
    mount_from: Sequence[str] = (),
    report: Report = lambda _m: None,
) -> PushResult:
    """Push every layer archive of the published ``output``, then the manifest at ``ref``.

    Blobs the registry holds are skipped; with ``mount_from``, blobs held by those
    repositories of the same registry are mounted instead of uploaded. Without a tag,
    the tag is ``stack-<first 12 hex digits of the config digest>``: one per stack version.
    """
    if ref.digest:
        raise OciError(f"{ref}: push to a tag, not a digest")
    root, layers = read_stack_metadata(output)
    published = [layer for layer in layers if layer.archive is not None]
    if not published or len(published) != len(layers):
        raise OciError(
            f"{root}: not the output of `venvlayers publish` (layers without archives);"
            " publish the stack, then push that folder"
        )
    for layer in published:
        assert layer.archive is not None
        path = root / layer.archive.archive_name
        if not path.is_file() or path.stat().st_size != layer.archive.archive_size:
            raise OciError(
                f"{path}: missing or not the size the metadata records; publish again, then push"
            )
    config = stack_config(published)
    if ref.tag is None:
        ref = ref.with_tag("stack-" + digest_of(config).removeprefix("sha256:")[:12])
    registry = Registry(ref)
    done: list[tuple[str, str]] = []
    for layer in published:
        assert layer.archive is not None
        archive = layer.archive
        digest = "sha256:" + archive.archive_hashes["sha256"]
        state = registry.push_blob(
            ref.repository, digest, archive.archive_size, root / archive.archive_name,
            mount_from=mount_from,
        )  # fmt: skip
        report(f"{archive.archive_name}: {state}")
        done.append((archive.archive_name, state))
    registry.push_blob(ref.repository, digest_of(config), len(config), config)
    manifest = stack_manifest(published, config)
    digest = registry.put_manifest(ref, manifest, OCI_MANIFEST)
    return PushResult(ref=ref, digest=digest, blobs=tuple(done), counters=registry.counters)
