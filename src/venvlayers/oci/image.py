"""``venvlayers image OUTPUT APP --base REF``: an OCI image that runs one app.

The image is the base image's layers, then one image layer per venvlayers layer, runtime
first, each holding that layer deployed under ``/opt/venvlayers/<install_target>``. The
app is deployed into a temporary folder (layers are relocatable: postinstall.py links
them with relative paths), then each layer is made right for its final place: the
absolute ``home`` in a venv's ``pyvenv.cfg`` is rewritten, and bytecode is compiled with
the final paths in it (``compileall -s/-p``), in ``unchecked-hash`` mode so no source
mtime is baked in. A layer's image layer depends only on its own archive: two apps on one
framework share that framework's image layer, byte for byte.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers._fs import staged_dir
from venvlayers._proc import run
from venvlayers.contract import LayerKind, LayerPublication, read_stack_metadata
from venvlayers.contract.layer_metadata import read_layer_metadata
from venvlayers.oci import media
from venvlayers.oci.client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Counters,
    Registry,
    digest_of,
    manifest_json,
)
from venvlayers.oci.errors import OciError
from venvlayers.oci.imagelayer import PackedLayer, pack_layer
from venvlayers.oci.push import canonical_json
from venvlayers.oci.ref import OciRef

Report = Callable[[str], None]

PREFIX = "/opt/venvlayers"
# As deploy leaves them for first use: test suites, the IDE, demos and 2to3.
_SKIP = r"[/\\](tests?|testing|idlelib|turtledemo|lib2to3|ensurepip)[/\\]"
_DOCKER_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "amd64": "amd64"}


@dataclass(frozen=True)
class ImageResult:
    digest: str  # of the image manifest
    layers: tuple[tuple[str, str], ...]  # (install target, image layer digest), runtime first
    ref: OciRef | None
    output: Path | None
    counters: Counters


@dataclass(frozen=True)
class _Base:
    ref: OciRef
    digest: str
    layers: tuple[dict[str, Any], ...]
    config: dict[str, Any]


def build_image(
    output: Path,
    app: str,
    base: OciRef,
    *,
    push: OciRef | None = None,
    layout_dir: Path | None = None,
    report: Report = lambda _m: None,
) -> ImageResult:
    """Build the image of ``app`` from the published ``output``; push it or write a layout."""
    if (push is None) == (layout_dir is None):
        raise OciError("image: give exactly one of --push oci://... or --output DIR")
    if push is not None and push.digest:
        raise OciError(f"{push}: push the image to a tag, not a digest")
    _root, layers = read_stack_metadata(output)
    chain = _chain(layers, app, output)
    app_layer = chain[-1]
    base_registry = Registry(base)
    base_image = _fetch_base(base_registry, base)
    with tempfile.TemporaryDirectory(prefix="venvlayers-image-") as tmp:
        work = Path(tmp)
        from venvlayers.deploy import deploy

        deployed = work / "deploy"
        report(f"deploying {app_layer.install_target} into a temporary folder")
        deploy(output, deployed, apps=[app_layer.install_target], compile_bytecode=False)
        runtime_dir = deployed / chain[0].install_target
        runtime_python = runtime_dir / read_layer_metadata(runtime_dir).python
        packed: list[tuple[LayerPublication, PackedLayer]] = []
        (work / "blobs").mkdir()
        for layer in chain:
            layer_dir = deployed / layer.install_target
            _make_final(layer_dir, deployed, runtime_python)
            report(f"{layer.install_target}: packing an image layer")
            packed.append(
                (
                    layer,
                    pack_layer(
                        layer_dir,
                        f"{PREFIX}/{layer.install_target}",
                        work / "blobs" / f"{layer.install_target}.tar.gz",
                        mtime=_epoch(layer.locked_at),
                    ),
                )
            )
        app_meta = read_layer_metadata(deployed / app_layer.install_target)
        config = _image_config(base_image, app_layer, chain, packed, app_meta)
        config_bytes = canonical_json(config)
        manifest = canonical_json(_image_manifest(base_image, packed, config_bytes))
        digest = digest_of(manifest)
        if push is not None:
            counters = _push(push, base_registry, base_image, packed, config_bytes, manifest)
        else:
            assert layout_dir is not None
            _write_layout(
                layout_dir, base_registry, base_image, packed, config_bytes, manifest,
                app_layer.install_target,
            )  # fmt: skip
            counters = base_registry.counters
    return ImageResult(
        digest=digest,
        layers=tuple((layer.install_target, p.digest) for layer, p in packed),
        ref=push,
        output=layout_dir,
        counters=counters,
    )


def _chain(layers: list[LayerPublication], app: str, output: Path) -> list[LayerPublication]:
    by_target = {layer.install_target: layer for layer in layers}
    apps = [layer for layer in layers if layer.kind is LayerKind.APPLICATION]
    found = next(
        (
            la
            for la in apps
            if app in (la.install_target, la.layer_name, la.layer_name.removeprefix("app-"))
        ),
        None,
    )
    if found is None:
        known = ", ".join(la.layer_name.removeprefix("app-") for la in apps)
        raise OciError(f"{output}: no app named {app!r} is published (apps: {known})")
    names = (found.runtime_layer, *reversed(found.required_layers), found.install_target)
    missing = [name for name in names if name not in by_target]
    if missing:
        raise OciError(f"{output}: {found.install_target} needs {missing[0]}, not published")
    return [by_target[name] for name in names]


def _fetch_base(registry: Registry, ref: OciRef) -> _Base:
    data, media_type, digest = registry.get_manifest(ref)
    manifest = manifest_json(data, str(ref))
    if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in manifest:
        arch = _ARCH.get(platform.machine(), platform.machine())
        choice = next(
            (
                entry
                for entry in manifest.get("manifests", [])
                if isinstance(entry, dict)
                and entry.get("platform", {}).get("os") == "linux"
                and entry.get("platform", {}).get("architecture") == arch
            ),
            None,
        )
        if choice is None:
            raise OciError(f"{ref}: the base image has no linux/{arch} image")
        data, media_type, digest = registry.get_manifest(
            OciRef(ref.host, ref.repository, digest=str(choice.get("digest")))
        )
        manifest = manifest_json(data, str(ref))
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST) and manifest.get("mediaType") not in (
        OCI_MANIFEST,
        DOCKER_MANIFEST,
    ):
        raise OciError(f"{ref}: not a container image ({media_type or 'unknown type'})")
    config_digest = str(manifest.get("config", {}).get("digest"))
    config = json.loads(registry.get_blob_bytes(ref.repository, config_digest))
    layers = []
    for entry in manifest.get("layers", []):
        entry = dict(entry)
        # Docker and OCI layer types name the same bytes; an OCI manifest uses OCI names.
        entry["mediaType"] = _DOCKER_LAYER_TYPES.get(entry["mediaType"], entry["mediaType"])
        layers.append(entry)
    return _Base(ref=ref, digest=digest, layers=tuple(layers), config=config)


def _make_final(layer_dir: Path, deployed: Path, runtime_python: Path) -> None:
    """Make a layer deployed under ``deployed`` right for its place under PREFIX."""
    cfg = layer_dir / "pyvenv.cfg"
    if cfg.is_file():
        text = cfg.read_text(encoding="utf-8")
        cfg.write_text(text.replace(str(deployed), PREFIX), encoding="utf-8")
    meta = read_layer_metadata(layer_dir)
    # PYTHONHASHSEED fixed: the order of frozen-set constants in bytecode follows it.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    run(
        [
            runtime_python, "-m", "compileall", "-q", "-j", "0", "-x", _SKIP,
            "-s", deployed, "-p", PREFIX, "--invalidation-mode", "unchecked-hash",
            layer_dir / meta.compile_dir,
        ],
        what=f"{layer_dir.name}: byte-compile", env=env, check=False,
    )  # fmt: skip


def _epoch(locked_at: str) -> int:
    try:
        moment = datetime.datetime.fromisoformat(locked_at)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0, int(moment.timestamp()))


def _image_config(
    base: _Base,
    app: LayerPublication,
    chain: list[LayerPublication],
    packed: list[tuple[LayerPublication, PackedLayer]],
    app_meta: Any,
) -> dict[str, Any]:
    base_config = base.config.get("config") or {}
    env = [item for item in base_config.get("Env") or [] if not item.startswith("PATH=")]
    base_path = next(
        (item[5:] for item in base_config.get("Env") or [] if item.startswith("PATH=")),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    app_dir = f"{PREFIX}/{app.install_target}"
    python = app_meta.app_python or app_meta.python
    labels = dict(base_config.get("Labels") or {})
    labels.update(
        {
            "org.opencontainers.image.title": app.layer_name.removeprefix("app-"),
            "org.opencontainers.image.base.name": str(base.ref),
            "org.opencontainers.image.base.digest": base.digest,
            media.IMAGE_APP: app.install_target,
            media.IMAGE_LAYERS: ",".join(layer.install_target for layer in chain),
        }
    )
    created = app.locked_at
    history = list(base.config.get("history") or [])
    history += [
        {"created": layer.locked_at, "created_by": f"venvlayers layer {layer.install_target}"}
        for layer, _ in packed
    ]
    return {
        "architecture": base.config.get("architecture", _ARCH.get(platform.machine())),
        "os": base.config.get("os", "linux"),
        "created": created,
        "config": {
            "Env": [
                f"PATH={app_dir}/bin:{base_path}",
                *env,
                f"VENVLAYERS_APP={app.install_target}",
            ],
            "Entrypoint": [f"{app_dir}/{python}", "-m", app_meta.launch_module],
            "WorkingDir": base_config.get("WorkingDir") or "/",
            "Labels": labels,
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": [
                *base.config.get("rootfs", {}).get("diff_ids", []),
                *(p.diff_id for _, p in packed),
            ],
        },
        "history": history,
    }


def _image_manifest(
    base: _Base, packed: list[tuple[LayerPublication, PackedLayer]], config: bytes
) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": media.IMAGE_CONFIG,
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [
            *base.layers,
            *(
                {
                    "mediaType": media.IMAGE_LAYER,
                    "digest": p.digest,
                    "size": p.size,
                    "annotations": {media.INSTALL_TARGET: layer.install_target},
                }
                for layer, p in packed
            ),
        ],
        "annotations": {
            "org.opencontainers.image.base.name": str(base.ref),
            "org.opencontainers.image.base.digest": base.digest,
        },
    }


def _push(
    ref: OciRef,
    base_registry: Registry,
    base: _Base,
    packed: list[tuple[LayerPublication, PackedLayer]],
    config: bytes,
    manifest: bytes,
) -> Counters:
    registry = base_registry if ref.host == base.ref.host else Registry(ref)
    with tempfile.TemporaryDirectory(prefix="venvlayers-base-") as tmp:
        for entry in base.layers:
            digest, size = str(entry["digest"]), int(entry["size"])
            if registry.blob_exists(ref.repository, digest):
                continue
            # On the base's own registry no byte needs to move: mount it.
            if registry is base_registry and registry.mount_blob(
                ref.repository, digest, base.ref.repository
            ):
                continue
            blob = Path(tmp) / digest.removeprefix("sha256:")
            base_registry.download_blob(base.ref.repository, digest, blob, size=size)
            registry.push_blob(ref.repository, digest, size, blob)
            blob.unlink()
    for _layer, p in packed:
        registry.push_blob(ref.repository, p.digest, p.size, p.path)
    registry.push_blob(ref.repository, digest_of(config), len(config), config)
    registry.put_manifest(ref, manifest, OCI_MANIFEST)
    return registry.counters


def _write_layout(
    folder: Path,
    base_registry: Registry,
    base: _Base,
    packed: list[tuple[LayerPublication, PackedLayer]],
    config: bytes,
    manifest: bytes,
    name: str,
) -> None:
    """An OCI image layout (oci-layout, index.json, blobs/sha256/...), written whole or not at all."""
    with staged_dir(folder) as staged:
        blobs = staged / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        for entry in base.layers:
            digest = str(entry["digest"])
            base_registry.download_blob(
                base.ref.repository, digest, blobs / digest.removeprefix("sha256:"),
                size=int(entry["size"]),
            )  # fmt: skip
        for _layer, p in packed:
            shutil.copyfile(p.path, blobs / p.digest.removeprefix("sha256:"))
        (blobs / digest_of(config).removeprefix("sha256:")).write_bytes(config)
        (blobs / digest_of(manifest).removeprefix("sha256:")).write_bytes(manifest)
        (staged / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest_of(manifest),
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": name.replace("@", "-")},
                }
            ],
        }
        (staged / "index.json").write_bytes(canonical_json(index))
