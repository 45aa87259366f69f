"""The stack model: frozen values built once by :mod:`venvlayers.spec.load`."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvlayers.contract.kinds import LayerKind as LayerKind

ALL_PLATFORMS: tuple[str, ...] = (
    "win_amd64",
    "win_arm64",
    "linux_x86_64",
    "linux_aarch64",
    "macosx_arm64",
    "macosx_x86_64",
)
# Where a runtime layer's Python may come from (its optional `source` field); the runtime
# stage has one provider for each.
RUNTIME_SOURCES: tuple[str, ...] = ("auto", "standalone", "local", "archive")
DEFAULT_GLIBC = "2.28"
DEFAULT_MACOSX = "13.0"


@dataclass(frozen=True)
class PythonImplementation:
    """``cpython@3.11`` or ``cpython@3.11.7``: an implementation and a (partial) version."""

    implementation: str
    version: str

    @property
    def feature_version(self) -> str:
        """``X.Y``: what locks depend on (a maintenance release invalidates nothing)."""
        return ".".join(self.version.split(".")[:2])

    @property
    def is_exact(self) -> bool:
        return self.version.count(".") == 2

    def __str__(self) -> str:
        return f"{self.implementation}@{self.version}"


@dataclass(frozen=True)
class PackageIndex:
    """A named index from ``[tool.uv]`` ``index = [...]``."""

    name: str
    url: str
    explicit: bool = False
    default: bool = False


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """Fields every layer has. Paths are absolute (resolved against the spec's folder)."""

    kind: LayerKind
    name: str
    requirements: tuple[str, ...]
    requirements_from: tuple[Path, ...] = ()
    platforms: tuple[str, ...]
    versioned: bool = False
    linux_target: str = DEFAULT_GLIBC
    macosx_target: str = DEFAULT_MACOSX
    dynlib_exclude: tuple[str, ...] = ()
    package_indexes: tuple[tuple[str, str], ...] = ()
    priority_indexes: tuple[str, ...] = ()
    index_overrides: tuple[tuple[str, str], ...] = ()
    # Dist name -> index name in force for this layer, inherited from lower layers.
    effective_package_indexes: tuple[tuple[str, str], ...] = ()

    @property
    def build_name(self) -> str:
        return f"{self.kind.build_prefix}{self.name}"

    def install_target(self, lock_version: int | None) -> str:
        """The deployed folder name: the build name, plus ``@<lock_version>`` when versioned."""
        if not self.versioned:
            return self.build_name
        return f"{self.build_name}@{lock_version if lock_version is not None else 1}"

    @property
    def lower_layers(self) -> tuple[str, ...]:
        """Build names of the layers beneath, in ``sys.path`` order, runtime last."""
        return ()

    @property
    def enabled(self) -> bool:
        return bool(self.platforms)

    @property
    def label(self) -> str:
        """How errors and output name the layer."""
        return f"{self.kind.value} {self.name!r}"


@dataclass(frozen=True, kw_only=True)
class RuntimeSpec(LayerSpec):
    python_implementation: PythonImplementation
    # Extension: where the runtime comes from (see venvlayers.runtime).
    source: str = "auto"
    source_path: str | None = None

    @property
    def runtime_name(self) -> str:
        return self.name


@dataclass(frozen=True, kw_only=True)
class LayeredSpec(LayerSpec):
    """A framework or application: a venv on a runtime, possibly through frameworks."""

    runtime_name: str
    frameworks: tuple[str, ...] = ()
    # Framework names in C3 order (the layer's sys.path order), without the runtime.
    framework_order: tuple[str, ...] = ()

    @property
    def lower_layers(self) -> tuple[str, ...]:
        """Build names of the layers beneath, in ``sys.path`` order, runtime last."""
        return (*(f"framework-{n}" for n in self.framework_order), self.runtime_name)


@dataclass(frozen=True, kw_only=True)
class FrameworkSpec(LayeredSpec):
    pass


@dataclass(frozen=True, kw_only=True)
class ApplicationSpec(LayeredSpec):
    launch_module: Path
    support_modules: tuple[Path, ...] = ()

    @property
    def launch_module_name(self) -> str:
        return module_name(self.launch_module)


def module_name(path: Path) -> str:
    """The importable name of a module file or package folder."""
    return path.stem if path.suffix == ".py" else path.name


@dataclass(frozen=True)
class StackSpec:
    path: Path
    runtimes: tuple[RuntimeSpec, ...]
    frameworks: tuple[FrameworkSpec, ...]
    applications: tuple[ApplicationSpec, ...]
    indexes: tuple[PackageIndex, ...] = ()
    # Baseline uv settings ([tool.uv] or venvstacks.uv.toml), as loaded.
    uv_config: Mapping[str, Any] = field(default_factory=dict)
    uv_config_path: Path | None = None
    # uv's exclude-newer: [tool.uv]'s, else the environment's (UV_EXCLUDE_NEWER), as given.
    exclude_newer: Any = None
    warnings: tuple[str, ...] = ()

    @property
    def spec_dir(self) -> Path:
        return self.path.parent

    @property
    def requirements_dir(self) -> Path:
        return self.spec_dir / "requirements"

    def layers(self) -> Iterator[LayerSpec]:
        """Every layer in definition order: runtimes, frameworks, applications."""
        yield from self.runtimes
        yield from self.frameworks
        yield from self.applications

    def layer(self, build_name: str) -> LayerSpec:
        for layer in self.layers():
            if layer.build_name == build_name:
                return layer
        raise KeyError(build_name)

    def find(self, name: str) -> LayerSpec | None:
        """A layer by build name, or by its name in the spec when that is unambiguous."""
        by_build = [layer for layer in self.layers() if layer.build_name == name]
        if by_build:
            return by_build[0]
        by_name = [layer for layer in self.layers() if layer.name == name]
        return by_name[0] if len(by_name) == 1 else None

    def runtime_of(self, layer: LayerSpec) -> RuntimeSpec:
        if isinstance(layer, RuntimeSpec):
            return layer
        assert isinstance(layer, LayeredSpec)
        return next(r for r in self.runtimes if r.name == layer.runtime_name)

    def lower_layers(self, layer: LayerSpec) -> tuple[LayerSpec, ...]:
        return tuple(self.layer(name) for name in layer.lower_layers)

    def upper_layers(self, layer: LayerSpec) -> tuple[LayerSpec, ...]:
        """Layers that have ``layer`` beneath them, in definition order."""
        return tuple(u for u in self.layers() if layer.build_name in u.lower_layers)

    def select(self, patterns: Iterable[str]) -> tuple[LayerSpec, ...]:
        """Layers matching any pattern, with the layers beneath and above them.

        A pattern is an ``fnmatch`` glob compared with the layer's name and build name.
        """
        wanted = list(patterns)
        if not wanted:
            return tuple(self.layers())
        matched = {
            layer.build_name
            for layer in self.layers()
            if any(
                fnmatch.fnmatchcase(layer.name, p) or fnmatch.fnmatchcase(layer.build_name, p)
                for p in wanted
            )
        }
        keep = set(matched)
        for layer in self.layers():
            if layer.build_name in matched:
                keep.update(layer.lower_layers)
            elif matched.intersection(layer.lower_layers):
                keep.add(layer.build_name)
        return tuple(layer for layer in self.layers() if layer.build_name in keep)
