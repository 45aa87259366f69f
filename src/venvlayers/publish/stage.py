"""`venvlayers publish`: one reproducible archive per built layer, plus the stack metadata."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from venvlayers import __version__, layout
from venvlayers._fs import (
    atomic_write_bytes,
    exclusive_lock,
    read_json,
    remove_leftovers,
    sha256_file,
    write_json,
)
from venvlayers.build.build_record import BuildRecord
from venvlayers.contract import (
    LAYER_METADATA_DIR,
    MANIFESTS_DIR,
    METADATA_DIR,
    SBOM_DIR,
    STACK_METADATA,
    ArchiveFields,
    AttachedFile,
    DeltaFields,
    Fields,
    LayerPublication,
    load_json,
    read_stack_metadata,
    write_stack_metadata,
)
from venvlayers.contract.layer_files import scan_layer
from venvlayers.contract.signature import SIGNATURE
from venvlayers.contract.stack_metadata import BYTECODE_MODE
from venvlayers.errors import MetadataError, PublishError
from venvlayers.lock import read_layer_lock
from venvlayers.publish.archive import (
    FORMATS,
    ArchiveRequest,
    ArchiveResult,
    write_layer_archives,
)
from venvlayers.publish.bytecode import compile_layer
from venvlayers.publish.delta import OldOutput, plan_deltas, read_old_output, write_deltas
from venvlayers.publish.metadata import host_platform, layer_publication
from venvlayers.publish.sign import sign_output
from venvlayers.spec import LayerSpec, StackSpec

# What each published archive was made from, so an unchanged layer reuses its archive.
_INPUTS_DIR = f"{METADATA_DIR}/.venvlayers"
_WRITTEN = "written"
# Serialises publishes into one output folder, so leftovers can be removed safely.
_PUBLISH_LOCK = f"{_INPUTS_DIR}/publish.lock"


@dataclass(frozen=True)
class PublishOptions:
    build_dir: Path
    output_dir: Path
    fmt: str = "tar.zst"
    include: tuple[str, ...] = ()
    tag_outputs: bool = False
    dry_run: bool = False
    force: bool = False
    jobs: int | None = None
    # Read the locks as they are, as `build --frozen` built from them.
    frozen: bool = False
    # Sign the stack metadata with this SSH key (see venvlayers.contract.signature).
    sign_key: Path | None = None
    # An earlier publish output: write delta archives from its layers (publish/delta.py).
    delta_from: Path | None = None
    # Ship each layer's bytecode in its archive (publish/bytecode.py).
    bytecode: bool = False


@dataclass(frozen=True)
class PublishResult:
    layers: tuple[LayerPublication, ...]
    written: tuple[str, ...]
    reused: tuple[str, ...]
    # With --dry-run: the metadata that would be written (archive sizes and hashes unknown).
    plan: tuple[dict[str, Any], ...] = ()


def default_output_dir(stack: StackSpec) -> Path:
    return stack.spec_dir / layout.DEFAULT_OUTPUT_DIR


def built_layers(
    stack: StackSpec, build_dir: Path, include: Sequence[str]
) -> list[tuple[LayerSpec, BuildRecord]]:
    """The selected enabled layers with their build records; every one must be built."""
    layers = []
    for layer in stack.select(include):
        if not layer.enabled:
            continue
        record = BuildRecord.read(build_dir, layer.build_name)
        if record is None or not (build_dir / record.install_target).is_dir():
            raise PublishError(
                f"{layer.build_name}: not built in {build_dir} (run `venvlayers build` first)"
            )
        layers.append((layer, record))
    return layers


def publications(
    stack: StackSpec,
    layers: Sequence[tuple[LayerSpec, BuildRecord]],
    build_dir: Path,
    *,
    frozen: bool = False,
) -> list[LayerPublication]:
    targets = {layer.build_name: record.install_target for layer, record in layers}
    for layer, _ in layers:
        for lower in layer.lower_layers:
            if lower not in targets:
                record = BuildRecord.read(build_dir, lower)
                if record is None:
                    raise PublishError(f"{lower}: not built (needed by {layer.build_name})")
                targets[lower] = record.install_target
    return [
        layer_publication(
            stack,
            layer,
            read_layer_lock(stack, layer, frozen=frozen),
            targets=targets,
            py_version=record.python_version,
        )
        for layer, record in layers
    ]


@dataclass(frozen=True)
class _Planned:
    """What publishing does for one layer: reuse its archive, or write a new one."""

    pub: LayerPublication
    inputs: dict[str, str]
    archive_name: str
    archive_build: int
    reuse: ArchiveFields | None
    request: ArchiveRequest | None
    # Deltas published with a reused archive stay valid while their files are there.
    kept_deltas: tuple[DeltaFields, ...] = ()


def publish_stack(
    stack: StackSpec,
    options: PublishOptions,
    *,
    report: Callable[[str], None] = lambda _m: None,
    progress: Any = None,
) -> PublishResult:
    if options.fmt not in FORMATS:
        raise PublishError(f"unknown archive format {options.fmt!r} (choose: {', '.join(FORMATS)})")
    if options.bytecode and options.delta_from is not None:
        # A delta takes its files from the build folder, which holds no shipped bytecode.
        raise PublishError("--bytecode and --delta-from cannot be used together (yet)")
    layers = built_layers(stack, options.build_dir, options.include)
    pubs = publications(stack, layers, options.build_dir, frozen=options.frozen)
    platform = host_platform()

    def plan_all() -> tuple[list[_Planned], tuple[str, ...]]:
        plans = [
            _plan(options, record, pub, platform)
            for (_, record), pub in zip(layers, pubs, strict=True)
        ]
        return plans, tuple(p.pub.install_target for p in plans if p.reuse)

    if options.dry_run:
        plans, reused = plan_all()
        return PublishResult(
            tuple(pubs), (), reused, tuple(_dry_run_entry(p, platform) for p in plans)
        )
    with exclusive_lock(
        options.output_dir / _PUBLISH_LOCK,
        on_wait=lambda: report(f"waiting for another publish into {options.output_dir}"),
    ):
        for leftover in _leftovers(options.output_dir):
            report(f"removed {leftover.name}, left by an interrupted publish")
        # Plans read the previous output, so they are made under the lock.
        plans, reused = plan_all()
        return _write(options, plans, reused, platform, report, progress)


def _write(
    options: PublishOptions,
    plans: Sequence[_Planned],
    reused: tuple[str, ...],
    platform: str,
    report: Callable[[str], None],
    progress: Any,
) -> PublishResult:
    # Read first: OLD may be this very folder, whose archives and manifests change below.
    old = read_old_output(options.delta_from) if options.delta_from is not None else None
    to_write = [p for p in plans if p.request is not None]
    with tempfile.TemporaryDirectory(prefix="venvlayers-bytecode-") as scratch:
        requests = [p.request for p in to_write if p.request]
        if options.bytecode:
            requests = [
                _with_bytecode(options, request, Path(scratch), report) for request in requests
            ]
        for plan in to_write:
            report(f"{plan.pub.install_target}: writing {plan.archive_name}")
        results = write_layer_archives(requests, jobs=options.jobs, progress=progress)
    written = {
        plan.pub.install_target: ArchiveFields(
            archive_build=plan.archive_build,
            archive_name=plan.archive_name,
            target_platform=platform,
            archive_size=result.size,
            archive_hashes={"sha256": result.sha256},
        )
        for plan, result in zip(to_write, results, strict=True)
    }
    manifests = _publish_manifests(options, to_write, results, plans)
    final = []
    for plan in plans:
        archive = plan.reuse or written[plan.pub.install_target]
        sbom = _publish_sbom(options, plan.pub.install_target)
        final.append(
            plan.pub.with_archive(archive)
            .with_sbom(sbom)
            .with_deltas(plan.kept_deltas)
            .with_bytecode(BYTECODE_MODE if options.bytecode else None)
        )
        # What was written, beside what it was made from: a later publish reuses the file
        # only while it is still exactly this one.
        written_file = _file_signature(options.output_dir / archive.archive_name)
        write_json(
            options.output_dir / _INPUTS_DIR / f"{plan.pub.install_target}.json",
            {**plan.inputs, _WRITTEN: {**written_file, "sha256": archive.archive_hashes["sha256"]}},
        )
    if old is not None:
        final = _with_deltas(options, old, final, manifests, report)
    _write_metadata(options, _merge_existing(options.output_dir, final), report)
    return PublishResult(tuple(final), tuple(written), reused)


def _with_bytecode(
    options: PublishOptions, request: ArchiveRequest, scratch: Path, report: Callable[[str], None]
) -> ArchiveRequest:
    """The request with the layer's bytecode, compiled into ``scratch``."""
    report(f"{request.root_name}: compiling bytecode to ship")
    bytecode = compile_layer(
        request.layer_dir,
        options.build_dir,
        scan_layer(request.layer_dir),
        scratch / request.root_name,
    )
    return replace(request, bytecode=tuple(bytecode))


def _publish_manifests(
    options: PublishOptions,
    to_write: Sequence[_Planned],
    results: Sequence[ArchiveResult],
    plans: Sequence[_Planned],
) -> dict[str, bytes]:
    """Each layer's manifest beside the archives (for deltas and registries), by target."""
    manifests = {
        plan.pub.install_target: result.manifest
        for plan, result in zip(to_write, results, strict=True)
    }
    for plan in plans:
        target = plan.pub.install_target
        path = options.output_dir / MANIFESTS_DIR / f"{target}.json"
        if target in manifests:
            if not path.is_file() or path.read_bytes() != manifests[target]:
                atomic_write_bytes(path, manifests[target], mode=0o644)
        elif path.is_file():
            manifests[target] = path.read_bytes()
    return manifests


def _with_deltas(
    options: PublishOptions,
    old: OldOutput,
    layers: list[LayerPublication],
    manifests: dict[str, bytes],
    report: Callable[[str], None],
) -> list[LayerPublication]:
    usable = [layer for layer in layers if layer.install_target in manifests]
    plans = plan_deltas(
        old,
        usable,
        manifests,
        build_dir=options.build_dir,
        output_dir=options.output_dir,
        fmt=options.fmt,
        mtimes={layer.install_target: _lock_time(layer.locked_at) for layer in usable},
        report=report,
    )
    written = write_deltas(plans, jobs=options.jobs, report=report)
    return [
        layer.with_deltas((written[layer.install_target],))
        if layer.install_target in written
        else layer
        for layer in layers
    ]


def _write_metadata(
    options: PublishOptions, layers: list[LayerPublication], report: Callable[[str], None]
) -> None:
    """Write the stack metadata; a signature of other metadata is removed, or made anew."""
    index = options.output_dir / STACK_METADATA
    signature = options.output_dir / SIGNATURE
    before = index.read_bytes() if index.is_file() else None
    write_stack_metadata(options.output_dir, layers)
    if options.sign_key is not None:
        sign_output(options.output_dir, options.sign_key)
        report(f"signed {STACK_METADATA} with {options.sign_key}")
    elif signature.exists() and index.read_bytes() != before:
        signature.unlink()
        report(f"removed {SIGNATURE}: it signed the metadata before; sign again")


def _publish_sbom(options: PublishOptions, install_target: str) -> AttachedFile | None:
    """Copy the layer's SBOM beside the archives; its sha256 goes into the stack metadata."""
    source = options.build_dir / install_target / layout.LAYER_SBOM
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return None  # built before layers carried an SBOM
    name = f"{install_target}.cdx.json"
    dest = options.output_dir / SBOM_DIR / name
    if not dest.is_file() or dest.read_bytes() != data:
        atomic_write_bytes(dest, data, mode=0o644)
    return AttachedFile(name=name, sha256=hashlib.sha256(data).hexdigest())


def _plan(
    options: PublishOptions, record: BuildRecord, pub: LayerPublication, platform: str
) -> _Planned:
    inputs = {
        "content": record.input_hash,
        "tool_version": __version__,
        "format": options.fmt,
        "tagged": str(options.tag_outputs),
    }
    if options.bytecode:
        # Only when asked: archives published before this option existed stay reusable.
        inputs["bytecode"] = BYTECODE_MODE
    previous = _previous(options.output_dir, pub)
    previous_archive = previous.archive if previous else None
    previous_inputs = _read_inputs(options.output_dir, pub.install_target) or {}
    written = previous_inputs.pop(_WRITTEN, None)
    unchanged = previous_inputs == inputs
    if (
        previous_archive is not None
        and unchanged
        and not options.force
        and _still_written(options.output_dir, previous_archive, written)
    ):
        kept = tuple(
            delta
            for delta in (previous.deltas if previous else ())
            if (options.output_dir / delta.archive_name).is_file()
        )
        return _Planned(
            pub, inputs, previous_archive.archive_name, previous_archive.archive_build,
            previous_archive, None, kept,
        )  # fmt: skip
    archive_build = 1
    if previous_archive is not None:
        # The build number counts content changes, not format or naming changes.
        same_content = previous_inputs.get("content") == record.input_hash
        archive_build = previous_archive.archive_build + (0 if same_content else 1)
    extension = FORMATS[options.fmt].extension
    name = (
        f"{pub.install_target}-{platform}-{archive_build}{extension}"
        if options.tag_outputs
        else f"{pub.install_target}{extension}"
    )
    request = ArchiveRequest(
        layer_dir=options.build_dir / record.install_target,
        dest=options.output_dir / name,
        root_name=pub.install_target,
        fmt=options.fmt,
        mtime=_lock_time(pub.locked_at),
    )
    return _Planned(pub, inputs, name, archive_build, None, request)


def _file_signature(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "inode": info.st_ino}


def _still_written(output_dir: Path, archive: ArchiveFields, written: Any) -> bool:
    """True when the archive on disk is the one the metadata describes.

    A killed publish can leave a newer archive under the old metadata, or half a record;
    the file's size, time and inode as recorded after writing it prove it unchanged
    cheaply, and anything else is checked by its sha256.
    """
    path = output_dir / archive.archive_name
    try:
        signature = _file_signature(path)
    except OSError:
        return False
    if not path.is_file() or signature["size"] != archive.archive_size:
        return False
    sha256 = archive.archive_hashes.get("sha256")
    if isinstance(written, dict) and written == {**signature, "sha256": sha256}:
        return True
    return sha256_file(path) == sha256


def _leftovers(output_dir: Path) -> list[Path]:
    """Temporary files of interrupted publishes (archives and metadata alike)."""
    removed = []
    for folder in (
        output_dir,
        output_dir / METADATA_DIR,
        output_dir / LAYER_METADATA_DIR,
        output_dir / _INPUTS_DIR,
    ):
        if folder.is_dir():
            removed += remove_leftovers(folder, ".*.tmp")
    return removed


def _dry_run_entry(plan: _Planned, platform: str) -> dict[str, Any]:
    """The metadata a layer would get; a new archive's size and hash are not known yet."""
    if plan.reuse is not None:
        return plan.pub.with_archive(plan.reuse).to_json()
    entry = plan.pub.to_json()
    entry.update(
        archive_build=plan.archive_build,
        archive_name=plan.archive_name,
        target_platform=platform,
        archive_size=None,
        archive_hashes=None,
    )
    return entry


def _previous(output_dir: Path, pub: LayerPublication) -> LayerPublication | None:
    """What the last publish wrote for this layer, if it is readable (else: write anew)."""
    path = output_dir / LAYER_METADATA_DIR / f"{pub.install_target}.json"
    if not path.is_file():
        return None
    try:
        return LayerPublication.from_json(
            Fields(load_json(path, origin=str(path)), str(path)), pub.kind
        )
    except MetadataError:
        return None


def _read_inputs(output_dir: Path, install_target: str) -> dict[str, Any] | None:
    try:
        data = read_json(output_dir / _INPUTS_DIR / f"{install_target}.json")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _merge_existing(output_dir: Path, layers: list[LayerPublication]) -> list[LayerPublication]:
    """Keep layers published earlier (e.g. outside --include) in the stack index."""
    if not (output_dir / STACK_METADATA).is_file():
        return layers
    try:
        _, existing = read_stack_metadata(output_dir)
    except MetadataError:
        # Unreadable: it is rewritten from what this publish knows.
        return layers
    names = {layer.layer_name for layer in layers}
    kept = [
        layer
        for layer in existing
        if layer.layer_name not in names
        and layer.archive is not None
        and (output_dir / layer.archive.archive_name).is_file()
    ]
    return kept + layers


def _lock_time(locked_at: str) -> int:
    return int(datetime.fromisoformat(locked_at.replace("Z", "+00:00")).timestamp())
