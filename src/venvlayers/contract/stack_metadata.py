"""Published metadata: ``__venvstacks__/venvstacks.json`` and ``env_metadata/<layer>.json``.

The one reader and writer of these files. Reading treats them as hostile: every field is
type-checked, every name is a legal folder name, the layers form a graph without cycles,
and each ``env_metadata`` file must agree with the index. Fields venvlayers does not
know (venvstacks writes some) are kept and written back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from venvlayers._fs import write_json
from venvlayers.contract.fields import Fields, load_json, parse_json
from venvlayers.contract.kinds import LayerKind
from venvlayers.errors import MetadataError

METADATA_DIR = "__venvstacks__"
STACK_METADATA = f"{METADATA_DIR}/venvstacks.json"
LAYER_METADATA_DIR = f"{METADATA_DIR}/env_metadata"


@dataclass(frozen=True)
class ArchiveFields:
    archive_build: int
    archive_name: str
    target_platform: str
    archive_size: int
    archive_hashes: dict[str, str]


_ARCHIVE_KEYS = frozenset(ArchiveFields.__dataclass_fields__)
SBOM_DIR = f"{METADATA_DIR}/sbom"
# Extension: each layer's manifest beside the archives, for deltas and registries.
MANIFESTS_DIR = f"{METADATA_DIR}/manifests"
# The one way bytecode is shipped in an archive: ``.pyc`` files that CPython loads without
# checking them against their source (PEP 552), so their bytes never depend on file times.
BYTECODE_MODE = "unchecked-hash"


@dataclass(frozen=True)
class AttachedFile:
    """A file published beside the archives (extension), bound by its sha256 to the metadata
    that a signature covers. ``name`` is a plain file name in its folder (e.g. SBOM_DIR)."""

    name: str
    sha256: str


@dataclass(frozen=True)
class DeltaFields:
    """Extension: an archive holding only what ``base`` lacks, to update a target that has
    the layer published as the archive ``base_archive_sha256``. ``manifest_sha256`` is the
    hash of the whole new layer's manifest, which the delta carries."""

    archive_name: str
    archive_size: int
    archive_sha256: str
    base_install_target: str
    base_archive_sha256: str
    manifest_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "archive_name": self.archive_name,
            "archive_size": self.archive_size,
            "archive_hashes": {"sha256": self.archive_sha256},
            "base_install_target": self.base_install_target,
            "base_archive_hashes": {"sha256": self.base_archive_sha256},
            "manifest_hashes": {"sha256": self.manifest_sha256},
        }

    @classmethod
    def from_json(cls, fields: Fields) -> DeltaFields:
        return cls(
            archive_name=fields.file_name("archive_name"),
            archive_size=fields.integer("archive_size"),
            archive_sha256=fields.object("archive_hashes").sha256("sha256"),
            base_install_target=fields.name("base_install_target"),
            base_archive_sha256=fields.object("base_archive_hashes").sha256("sha256"),
            manifest_sha256=fields.object("manifest_hashes").sha256("sha256"),
        )


@dataclass(frozen=True)
class LayerPublication:
    """One layer's published metadata (the archive fields are absent for exports)."""

    layer_name: str
    install_target: str
    requirements_hash: str
    lock_version: int
    locked_at: str
    runtime_layer: str
    python_implementation: str
    bound_to_implementation: bool
    required_layers: tuple[str, ...]
    app_launch_module: str | None
    app_launch_module_hash: str | None
    archive: ArchiveFields | None = None
    # Extension: the layer's SBOM under __venvstacks__/sbom/.
    sbom: AttachedFile | None = None
    # Extension: delta archives from earlier versions of the layer.
    deltas: tuple[DeltaFields, ...] = ()
    # Extension: the archive ships the layer's bytecode, made at publish in this
    # invalidation mode (``BYTECODE_MODE``), so deploy does not compile the layer.
    bytecode: str | None = None
    # The list it is published in; read from the index, not guessed from the name.
    kind: LayerKind = field(default=LayerKind.RUNTIME, compare=False)
    # Fields of other writers (venvstacks), kept as they are.
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update(
            {
                key: getattr(self, key)
                for key in LayerPublication.__dataclass_fields__
                if key not in ("archive", "sbom", "deltas", "bytecode", "kind", "extra")
            }
        )
        data["required_layers"] = list(self.required_layers)
        if self.sbom is not None:
            data["sbom"] = {"name": self.sbom.name, "sha256": self.sbom.sha256}
        if self.deltas:
            data["deltas"] = [delta.to_json() for delta in self.deltas]
        if self.bytecode is not None:
            data["bytecode"] = self.bytecode
        if self.archive is not None:
            data.update({key: getattr(self.archive, key) for key in sorted(_ARCHIVE_KEYS)})
        return data

    @classmethod
    def from_json(cls, fields: Fields, kind: LayerKind) -> LayerPublication:
        archive = None
        if fields.has("archive_name"):
            hashes = fields.object("archive_hashes")
            archive = ArchiveFields(
                archive_build=fields.integer("archive_build"),
                archive_name=fields.file_name("archive_name"),
                target_platform=fields.text("target_platform"),
                archive_size=fields.integer("archive_size"),
                archive_hashes={"sha256": hashes.sha256("sha256")},
            )
        sbom = None
        if fields.has("sbom"):
            attached = fields.object("sbom")
            sbom = AttachedFile(name=attached.file_name("name"), sha256=attached.sha256("sha256"))
        bytecode = fields.optional_text("bytecode")
        if bytecode is not None and bytecode != BYTECODE_MODE:
            fields.fail("bytecode", f"must be {BYTECODE_MODE!r} (or absent), not {bytecode!r}")
        is_app = kind is LayerKind.APPLICATION
        known = set(cls.__dataclass_fields__) | _ARCHIVE_KEYS
        return cls(
            layer_name=fields.name("layer_name"),
            install_target=fields.name("install_target"),
            requirements_hash=fields.text("requirements_hash"),
            lock_version=fields.integer("lock_version", minimum=1),
            locked_at=fields.text("locked_at"),
            runtime_layer=fields.name("runtime_layer"),
            python_implementation=fields.text("python_implementation"),
            bound_to_implementation=fields.boolean(
                "bound_to_implementation", default=kind is not LayerKind.RUNTIME
            ),
            # venvstacks leaves it out of runtime entries.
            required_layers=fields.names("required_layers", default=[]),
            app_launch_module=fields.text("app_launch_module") if is_app else None,
            app_launch_module_hash=fields.optional_text("app_launch_module_hash"),
            archive=archive,
            sbom=sbom,
            deltas=tuple(
                DeltaFields.from_json(delta) for delta in fields.objects("deltas", default=[])
            ),
            bytecode=bytecode,
            kind=kind,
            extra={k: v for k, v in fields.plain().items() if k not in known},
        )

    def with_archive(self, archive: ArchiveFields) -> LayerPublication:
        return replace(self, archive=archive)

    def with_sbom(self, sbom: AttachedFile | None) -> LayerPublication:
        return replace(self, sbom=sbom)

    def with_deltas(self, deltas: tuple[DeltaFields, ...]) -> LayerPublication:
        return replace(self, deltas=deltas)

    def with_bytecode(self, bytecode: str | None) -> LayerPublication:
        return replace(self, bytecode=bytecode)


def write_stack_metadata(output_dir: Path, layers: Iterable[LayerPublication]) -> None:
    """Write every layer's file, then the stack index last (it names only finished files)."""
    published = list(layers)
    for layer in published:
        write_json(
            output_dir / LAYER_METADATA_DIR / f"{layer.install_target}.json", layer.to_json()
        )
    write_json(output_dir / STACK_METADATA, stack_index(published))


def stack_index(layers: Iterable[LayerPublication]) -> dict[str, Any]:
    index: dict[str, Any] = {"layers": {kind.table: [] for kind in LayerKind}}
    for layer in layers:
        index["layers"][layer.kind.table].append(layer.to_json())
    return index


def read_stack_metadata(source: Path) -> tuple[Path, list[LayerPublication]]:
    """Read and check a published output folder (or its venvstacks.json).

    Returns the folder and its layers; a :class:`MetadataError` names the first problem.
    """
    path = source / STACK_METADATA if source.is_dir() else source
    if not path.is_file():
        raise MetadataError(f"{source}: no {STACK_METADATA} here (publish the stack first)")
    root = path.parent.parent if path.parent.name == METADATA_DIR else path.parent
    origin = str(path)
    layers = _layers_of(load_json(path, origin=origin), origin)
    for layer in layers:
        _check_layer_file(root, layer)
    return root, layers


def parse_stack_metadata(raw: bytes, *, origin: str) -> list[LayerPublication]:
    """The layers of stack metadata given as bytes (e.g. the copy a signature covers),
    checked as :func:`read_stack_metadata` checks a file (less the env_metadata files)."""
    return _layers_of(parse_json(raw, origin=origin), origin)


def _layers_of(document: Any, origin: str) -> list[LayerPublication]:
    index = Fields(document, origin).object("layers")
    layers = [
        LayerPublication.from_json(entry, kind)
        for kind in LayerKind
        for entry in index.objects(kind.table, default=[])
    ]
    _check_graph(layers, origin)
    return layers


def _check_graph(layers: list[LayerPublication], origin: str) -> None:
    """Unique install targets; runtimes below frameworks below apps; no cycles."""
    by_target: dict[str, LayerPublication] = {}
    for layer in layers:
        if layer.install_target in by_target:
            raise MetadataError(f"{origin}: install_target {layer.install_target!r} appears twice")
        by_target[layer.install_target] = layer
    for layer in layers:
        runtime = by_target.get(layer.runtime_layer)
        if runtime is not None and runtime.kind is not LayerKind.RUNTIME:
            raise MetadataError(
                f"{origin}: {layer.install_target}: runtime_layer {layer.runtime_layer!r}"
                " is not a runtime layer"
            )
        if layer.kind is LayerKind.RUNTIME and layer.runtime_layer != layer.install_target:
            raise MetadataError(
                f"{origin}: {layer.install_target}: a runtime's runtime_layer must be itself"
            )
        for lower in layer.required_layers:
            found = by_target.get(lower)
            if found is not None and found.kind is not LayerKind.FRAMEWORK:
                raise MetadataError(
                    f"{origin}: {layer.install_target}: required_layers names {lower!r},"
                    " which is not a framework layer"
                )
    # Frameworks may require frameworks: follow them, refusing any cycle.
    done: set[str] = set()
    for start in layers:
        stack = [(start.install_target, iter(start.required_layers))]
        on_path = {start.install_target}
        while stack:
            name, lowers = stack[-1]
            following = next(lowers, None)
            if following is None:
                stack.pop()
                on_path.discard(name)
                done.add(name)
                continue
            if following in on_path:
                cycle = " -> ".join([*(n for n, _ in stack), following])
                raise MetadataError(f"{origin}: required_layers form a cycle: {cycle}")
            if following in done or following not in by_target:
                continue
            on_path.add(following)
            stack.append((following, iter(by_target[following].required_layers)))


def _check_layer_file(root: Path, layer: LayerPublication) -> None:
    """``env_metadata/<install_target>.json``, when present, must say what the index says."""
    path = root / LAYER_METADATA_DIR / f"{layer.install_target}.json"
    if not path.exists():
        return
    origin = str(path)
    if not path.is_file():
        raise MetadataError(f"{origin}: not a regular file")
    own = LayerPublication.from_json(Fields(load_json(path, origin=origin), origin), layer.kind)
    if own != layer or own.archive != layer.archive:
        raise MetadataError(
            f"{origin}: disagrees with {STACK_METADATA} about {layer.install_target}; publish again"
        )
