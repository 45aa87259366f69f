"""Published metadata: ``__venvstacks__/venvstacks.json`` and ``env_metadata/<layer>.json``."""

from __future__ import annotations

import sysconfig
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from venvlayers._fs import read_json, write_json
from venvlayers.build.app_modules import modules_hash
from venvlayers.errors import PublishError
from venvlayers.lock import LayerLock
from venvlayers.spec import ApplicationSpec, LayerKind, LayerSpec, StackSpec

METADATA_DIR = "__venvstacks__"
STACK_METADATA = f"{METADATA_DIR}/venvstacks.json"
LAYER_METADATA_DIR = f"{METADATA_DIR}/env_metadata"

# sysconfig platform names -> the platform names of the stack format.
_PLATFORMS = {
    "linux-x86_64": "linux_x86_64",
    "linux-aarch64": "linux_aarch64",
    "win-amd64": "win_amd64",
    "win-arm64": "win_arm64",
}


def host_platform() -> str:
    name = sysconfig.get_platform()
    if name.startswith("macosx-"):
        return "macosx_arm64" if name.endswith("arm64") else "macosx_x86_64"
    return _PLATFORMS.get(name, name.replace("-", "_").replace(".", "_"))


@dataclass(frozen=True)
class ArchiveFields:
    archive_build: int
    archive_name: str
    target_platform: str
    archive_size: int
    archive_hashes: dict[str, str]


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

    @property
    def kind(self) -> LayerKind:
        if self.layer_name.startswith("app-"):
            return LayerKind.APPLICATION
        if self.layer_name.startswith("framework-"):
            return LayerKind.FRAMEWORK
        return LayerKind.RUNTIME

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["required_layers"] = list(self.required_layers)
        archive = data.pop("archive")
        if archive is not None:
            data.update(archive)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerPublication:
        archive = None
        if "archive_name" in data:
            archive = ArchiveFields(
                archive_build=int(data["archive_build"]),
                archive_name=str(data["archive_name"]),
                target_platform=str(data["target_platform"]),
                archive_size=int(data["archive_size"]),
                archive_hashes=dict(data["archive_hashes"]),
            )
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k != "archive"}
        fields["required_layers"] = tuple(fields["required_layers"])
        return cls(**fields, archive=archive)

    def with_archive(self, archive: ArchiveFields) -> LayerPublication:
        return replace(self, archive=archive)


def layer_publication(
    stack: StackSpec, layer: LayerSpec, lock: LayerLock, *, targets: dict[str, str], py_version: str
) -> LayerPublication:
    """The metadata of ``layer``; ``targets`` maps build names to install targets."""
    runtime = stack.runtime_of(layer)
    launch, launch_hash = None, None
    if isinstance(layer, ApplicationSpec):
        launch = layer.launch_module_name
        launch_hash = modules_hash([layer.launch_module, *layer.support_modules])
    return LayerPublication(
        layer_name=layer.build_name,
        install_target=targets[layer.build_name],
        requirements_hash=lock.requirements_hash,
        lock_version=lock.lock_version,
        locked_at=lock.locked_at,
        runtime_layer=targets[runtime.build_name],
        python_implementation=f"{runtime.python_implementation.implementation}@{py_version}",
        bound_to_implementation=layer.kind is not LayerKind.RUNTIME,
        required_layers=tuple(targets[name] for name in layer.lower_layers[:-1]),
        app_launch_module=launch,
        app_launch_module_hash=launch_hash,
    )


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
    """Read a published output folder (or its venvstacks.json); returns its folder and layers."""
    path = source / STACK_METADATA if source.is_dir() else source
    if not path.is_file():
        raise PublishError(f"{source}: no {STACK_METADATA} here (publish the stack first)")
    try:
        data = read_json(path)
        layers = [
            LayerPublication.from_json(entry)
            for kind in LayerKind
            for entry in data["layers"].get(kind.table, [])
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(f"{path}: malformed stack metadata ({exc})") from None
    root = path.parent.parent if path.parent.name == METADATA_DIR else path.parent
    return root, layers
