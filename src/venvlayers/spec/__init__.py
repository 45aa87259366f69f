"""The stack specification: model, loading and validation."""

from venvlayers.spec.load import load_stack
from venvlayers.spec.model import (
    ALL_PLATFORMS,
    RUNTIME_SOURCES,
    ApplicationSpec,
    FrameworkSpec,
    LayeredSpec,
    LayerKind,
    LayerSpec,
    PackageIndex,
    PythonImplementation,
    RuntimeSpec,
    StackSpec,
)
from venvlayers.spec.modules import module_files

__all__ = [
    "ALL_PLATFORMS",
    "RUNTIME_SOURCES",
    "ApplicationSpec",
    "FrameworkSpec",
    "LayerKind",
    "LayerSpec",
    "LayeredSpec",
    "PackageIndex",
    "PythonImplementation",
    "RuntimeSpec",
    "StackSpec",
    "load_stack",
    "module_files",
]
