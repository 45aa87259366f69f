"""The published metadata of a built layer, composed from its spec, lock and build.

The files themselves are read and written by :mod:`venvlayers.contract`.
"""

from __future__ import annotations

import sysconfig

from venvlayers.build.app_modules import modules_hash
from venvlayers.contract import LayerPublication
from venvlayers.lock import LayerLock
from venvlayers.spec import ApplicationSpec, LayerKind, LayerSpec, StackSpec

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
        kind=layer.kind,
    )
