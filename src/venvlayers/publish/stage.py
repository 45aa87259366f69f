"""`venvlayers publish`: one reproducible archive per built layer, plus the stack metadata."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from venvlayers import __version__
from venvlayers._fs import read_json, write_json
from venvlayers.build.record import BuildRecord
from venvlayers.errors import PublishError
from venvlayers.lock import read_layer_lock
from venvlayers.publish.archive import FORMATS, ArchiveRequest, write_layer_archives
from venvlayers.publish.metadata import (
    LAYER_METADATA_DIR,
    METADATA_DIR,
    ArchiveFields,
    LayerPublication,
    host_platform,
    layer_publication,
    write_stack_metadata,
)
from venvlayers.spec import LayerSpec, StackSpec

# What each published archive was made from, so an unchanged layer reuses its archive.
_INPUTS_DIR = f"{METADATA_DIR}/.venvlayers"


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


@dataclass(frozen=True)
class PublishResult:
    layers: tuple[LayerPublication, ...]
    written: tuple[str, ...]
    reused: tuple[str, ...]
    # With --dry-run: the metadata that would be written (archive sizes and hashes unknown).
    plan: tuple[dict[str, Any], ...] = ()


def default_output_dir(stack: StackSpec) -> Path:
    return stack.spec_dir / "_artifacts"


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
    stack: StackSpec, layers: Sequence[tuple[LayerSpec, BuildRecord]], build_dir: Path
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
            read_layer_lock(stack, layer),
            targets=targets,
            py_version=record.python_version,
        )
        for layer, record in layers
    ]


def publish_stack(
    stack: StackSpec,
    options: PublishOptions,
    *,
    report: Callable[[str], None] = lambda _m: None,
    progress: Any = None,
) -> PublishResult:
    if options.fmt not in FORMATS:
        raise PublishError(f"unknown archive format {options.fmt!r} (choose: {', '.join(FORMATS)})")
    extension = FORMATS[options.fmt].extension
    layers = built_layers(stack, options.build_dir, options.include)
    pubs = publications(stack, layers, options.build_dir)
    platform = host_platform()
    final: dict[str, LayerPublication] = {}
    requests: list[tuple[LayerPublication, ArchiveRequest, str, int]] = []
    reused: list[str] = []
    for (layer, record), pub in zip(layers, pubs, strict=True):
        inputs = {"content": record.input_hash, "tool_version": __version__, "format": options.fmt}
        previous = _previous(options.output_dir, pub.install_target)
        prev_inputs = _read_inputs(options.output_dir, pub.install_target)
        unchanged = prev_inputs is not None and {k: prev_inputs.get(k) for k in inputs} == inputs
        if previous and previous.archive and unchanged and not options.force:
            if (options.output_dir / previous.archive.archive_name).is_file():
                final[layer.build_name] = pub.with_archive(previous.archive)
                reused.append(pub.install_target)
                continue
        archive_build = 1
        if previous and previous.archive:
            archive_build = previous.archive.archive_build + (0 if unchanged else 1)
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
        requests.append((pub, request, name, archive_build))
        final[layer.build_name] = pub
    if options.dry_run:
        planned = {p.install_target: (n, b) for p, _, n, b in requests}
        plan = []
        for layer, _ in layers:
            entry = final[layer.build_name].to_json()
            if entry["install_target"] in planned:
                name, archive_build = planned[entry["install_target"]]
                entry.update(archive_name=name, archive_build=archive_build)
                entry.update(target_platform=platform, archive_size=None, archive_hashes=None)
            plan.append(entry)
        return PublishResult(tuple(final.values()), (), tuple(reused), tuple(plan))
    for pub, _, _, _ in requests:
        report(f"{pub.install_target}: writing archive")
    results = write_layer_archives(
        [r for _, r, _, _ in requests], jobs=options.jobs, progress=progress
    )
    for (pub, _, name, archive_build), result in zip(requests, results, strict=True):
        layer_name = pub.layer_name
        final[layer_name] = pub.with_archive(
            ArchiveFields(
                archive_build=archive_build,
                archive_name=name,
                target_platform=platform,
                archive_size=result.size,
                archive_hashes={"sha256": result.sha256},
            )
        )
    for (layer, record), _ in zip(layers, pubs, strict=True):
        write_json(
            options.output_dir / _INPUTS_DIR / f"{record.install_target}.json",
            {"content": record.input_hash, "tool_version": __version__, "format": options.fmt},
        )
    ordered = [final[layer.build_name] for layer, _ in layers]
    write_stack_metadata(options.output_dir, _merge_existing(options.output_dir, ordered))
    return PublishResult(
        tuple(ordered), tuple(p.install_target for p, _, _, _ in requests), tuple(reused)
    )


def _previous(output_dir: Path, install_target: str) -> LayerPublication | None:
    path = output_dir / LAYER_METADATA_DIR / f"{install_target}.json"
    try:
        return LayerPublication.from_json(read_json(path))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_inputs(output_dir: Path, install_target: str) -> dict[str, Any] | None:
    try:
        data = read_json(output_dir / _INPUTS_DIR / f"{install_target}.json")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _merge_existing(output_dir: Path, layers: list[LayerPublication]) -> list[LayerPublication]:
    """Keep layers published earlier (e.g. outside --include) in the stack index."""
    from venvlayers.publish.metadata import read_stack_metadata

    try:
        _, existing = read_stack_metadata(output_dir)
    except PublishError:
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
