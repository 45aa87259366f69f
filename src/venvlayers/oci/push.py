"""``venvlayers push OUTPUT oci://...``: a published output as one registry artifact."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers.contract import (
    LAYER_METADATA_DIR,
    MANIFESTS_DIR,
    SBOM_DIR,
    STACK_METADATA,
    LayerKind,
    LayerPublication,
    read_stack_metadata,
)
from venvlayers.contract.signature import SIGNATURE
from venvlayers.oci import media
from venvlayers.oci.client import OCI_MANIFEST, Counters, Registry, digest_of
from venvlayers.oci.errors import OciError
from venvlayers.oci.ref import OciRef

Report = Callable[[str], None]


@dataclass(frozen=True)
class PushResult:
    ref: OciRef  # with the tag pushed
    digest: str  # of the manifest
    # (archive name or path in the output, present / mounted / uploaded)
    blobs: tuple[tuple[str, str], ...]
    counters: Counters


def canonical_json(data: Any) -> bytes:
    """Compact, key-sorted JSON: the same content always has the same digest."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Attached:
    """A file of the output pushed beside the layer archives (docs/registries.md)."""

    path: str  # relative to the output: "__venvstacks__/sbom/app-x.cdx.json", a delta's name
    media_type: str
    digest: str
    size: int
    content: Path | bytes  # deltas stream from their file; the rest are small
    install_target: str | None = None


def attached_files(
    root: Path, layers: Sequence[LayerPublication], report: Report
) -> list[Attached]:
    """The signature, and per layer its deltas, SBOM, manifest and env_metadata file.

    Each is pushed when the output holds it: a folder deploy would find the same files,
    and takes them when the metadata binds them (deltas, SBOMs and manifests by sha256).
    A file the metadata binds that no longer matches is refused here, not at deploy.
    """
    found: list[Attached] = []
    signature = _small(root, SIGNATURE, media.SIGNATURE, None)
    if signature is not None:
        found.append(signature)
    for layer in layers:
        name = layer.install_target
        for delta in layer.deltas:
            path = root / delta.archive_name
            if not path.is_file():
                report(f"{delta.archive_name}: not in {root}; pushed without it")
                continue
            if path.stat().st_size != delta.archive_size:
                raise OciError(
                    f"{path}: not the size the metadata records; publish again, then push"
                )
            found.append(
                Attached(
                    delta.archive_name,
                    media.layer_media_type(delta.archive_name, delta=True),
                    "sha256:" + delta.archive_sha256,
                    delta.archive_size,
                    path,
                    name,
                )
            )
        if layer.sbom is not None:
            sbom = _small(root, f"{SBOM_DIR}/{layer.sbom.name}", media.SBOM, name)
            if sbom is not None and sbom.digest != "sha256:" + layer.sbom.sha256:
                raise OciError(
                    f"{root / sbom.path}: not the SBOM the metadata names; publish again"
                )
            found.extend([sbom] if sbom is not None else [])
        for folder, media_type in (
            (MANIFESTS_DIR, media.LAYER_MANIFEST),
            (LAYER_METADATA_DIR, media.LAYER_METADATA),
        ):
            extra = _small(root, f"{folder}/{name}.json", media_type, name)
            found.extend([extra] if extra is not None else [])
    return found


def _small(
    root: Path, relative: str, media_type: str, install_target: str | None
) -> Attached | None:
    try:
        data = (root / relative).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OciError(f"{root / relative}: cannot read it ({exc})") from None
    return Attached(relative, media_type, digest_of(data), len(data), data, install_target)


def stack_manifest(
    layers: Sequence[LayerPublication], config: bytes, attached: Sequence[Attached] = ()
) -> bytes:
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
    for extra in attached:
        annotations = {media.TITLE: extra.path.rpartition("/")[2]}
        if extra.install_target is not None:
            annotations[media.INSTALL_TARGET] = extra.install_target
        entries.append(
            {
                "mediaType": extra.media_type,
                "digest": extra.digest,
                "size": extra.size,
                "annotations": annotations,
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
    metadata = output / STACK_METADATA if output.is_dir() else output
    # The config is the file's bytes, not a rendering of them: a signature covers those.
    before = _read_metadata(metadata) if metadata.is_file() else b""
    root, layers = read_stack_metadata(output)
    config = _read_metadata(metadata)
    if config != before:
        raise OciError(f"{metadata}: changed while it was read; push again")
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
    attached = attached_files(root, published, report)
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
    for extra in attached:
        state = registry.push_blob(
            ref.repository, extra.digest, extra.size, extra.content, mount_from=mount_from
        )
        report(f"{extra.path}: {state}")
        done.append((extra.path, state))
    registry.push_blob(ref.repository, digest_of(config), len(config), config)
    manifest = stack_manifest(published, config, attached)
    digest = registry.put_manifest(ref, manifest, OCI_MANIFEST)
    return PushResult(ref=ref, digest=digest, blobs=tuple(done), counters=registry.counters)


def _read_metadata(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise OciError(
            f"{path}: no stack metadata here; push the folder `venvlayers publish` wrote"
        ) from None
