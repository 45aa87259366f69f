"""Build one layer into a staging folder, then move it into place atomically."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from venvlayers import layout
from venvlayers._fs import staged_dir
from venvlayers._proc import run
from venvlayers._uv import uv_binary, uv_environment
from venvlayers.build.app_modules import copy_modules
from venvlayers.build.dynlib import (
    check_lower_needs,
    expose_dynlibs,
    has_dynlibs,
    write_app_python,
)
from venvlayers.build.link import write_layer_links
from venvlayers.build.packages import install_locked, installed_wheels, probe_marker_environment
from venvlayers.build.sbom import SbomRequest, write_layer_sbom
from venvlayers.build.scripts import make_scripts_relocatable
from venvlayers.contract.layer_metadata import (
    LayerMetadata,
    read_layer_metadata,
    write_layer_metadata,
)
from venvlayers.environment import Environment
from venvlayers.environment import current as current_environment
from venvlayers.lock import LayerLock
from venvlayers.runtime import copy_runtime, prepare_runtime, resolve_source
from venvlayers.spec import ApplicationSpec, LayeredSpec, LayerSpec, RuntimeSpec, StackSpec

# Files `uv venv` leaves at a venv's root for its own use; CACHEDIR.TAG would even make
# backup tools skip a deployed layer.
_UV_VENV_MARKERS = (".gitignore", ".lock", "CACHEDIR.TAG")
# Installer tools a runtime layer keeps only when its requirements ask for them.
_INSTALLER_TOOLS = ("pip", "setuptools", "wheel")


@dataclass(frozen=True)
class BuiltLayer:
    python_version: str
    runtime_source: str
    seconds: float


def build_layer(
    stack: StackSpec,
    layer: LayerSpec,
    lock: LayerLock,
    final: Path,
    *,
    lower_targets: Mapping[str, str],
    runtime_source: str | None,
    report: Callable[[str], None],
    environment: Environment | None = None,
) -> BuiltLayer:
    started = time.monotonic()
    with staged_dir(final) as staging:
        if isinstance(layer, RuntimeSpec):
            staging.rmdir()
            version, source = _build_runtime(
                layer, lock, staging, runtime_source, report, environment
            )
        else:
            assert isinstance(layer, LayeredSpec)
            version, source = _build_venv(stack, layer, lock, staging, final, lower_targets, report)
        _write_sbom(stack, layer, lock, staging, final, lower_targets, version, source)
        _install_postinstall(staging)
    return BuiltLayer(version, source, time.monotonic() - started)


def _write_sbom(
    stack: StackSpec,
    layer: LayerSpec,
    lock: LayerLock,
    staging: Path,
    final: Path,
    lower_targets: Mapping[str, str],
    python_version: str,
    runtime_source: str,
) -> None:
    meta = read_layer_metadata(staging, layer.build_name)
    lowers = [
        (lower_targets[name], stack.layer(name).kind, final.parent / lower_targets[name])
        for name in layer.lower_layers
    ]
    write_layer_sbom(
        staging,
        SbomRequest(
            install_target=final.name,
            kind=layer.kind,
            lock=lock,
            installed=installed_wheels(lock, probe_marker_environment(staging / meta.python)),
            site_packages=staging / meta.site_dir,
            python_version=python_version,
            runtime_source=runtime_source if isinstance(layer, RuntimeSpec) else None,
            lower_layers=lowers,
        ),
    )


def _build_runtime(
    layer: RuntimeSpec,
    lock: LayerLock,
    staging: Path,
    cli_source: str | None,
    report: Callable[[str], None],
    environment: Environment | None,
) -> tuple[str, str]:
    environment = environment or current_environment()
    prepared = prepare_runtime(
        layer.python_implementation,
        source=resolve_source(layer.source, cli_source, environment),
        source_path=layer.source_path,
        environment=environment,
        report=report,
    )
    copy_runtime(prepared, staging)
    python = staging / prepared.python
    install_locked(lock, python, work_dir=staging.parent)
    locked = {package.name for package in lock.packages}
    unwanted = [tool for tool in _INSTALLER_TOOLS if tool not in locked]
    run(
        [uv_binary(), "pip", "uninstall", "--python", python, "--break-system-packages", *unwanted],
        what=f"{layer.build_name}: remove installer tools",
        env=uv_environment(),
    )
    make_scripts_relocatable(staging)
    expose_dynlibs(
        staging, exclude=layer.dynlib_exclude, layer_name=layer.build_name, report=report
    )
    feature = prepared.version.rsplit(".", 1)[0]
    write_layer_metadata(
        staging,
        LayerMetadata.for_runtime(
            python=prepared.python,
            py_version=prepared.version,
            site_dir=layout.site_packages(feature),
            runtime_source=prepared.source,
        ),
    )
    return prepared.version, prepared.source


def _build_venv(
    stack: StackSpec,
    layer: LayeredSpec,
    lock: LayerLock,
    staging: Path,
    final: Path,
    lower_targets: Mapping[str, str],
    report: Callable[[str], None],
) -> tuple[str, str]:
    build_dir = final.parent
    runtime_target = lower_targets[layer.runtime_name]
    runtime_meta = read_layer_metadata(build_dir / runtime_target)
    base_python = build_dir / runtime_target / runtime_meta.python
    run(
        [
            uv_binary(), "venv", "--relocatable", "--no-config", "--python", base_python,
            "--prompt", layer.build_name, "--quiet", staging,
        ],
        what=f"{layer.build_name}: uv venv",
        env=uv_environment(),
    )  # fmt: skip
    site_dir = runtime_meta.site_dir
    install_locked(lock, staging / layout.venv_python(), work_dir=build_dir)
    for marker in _UV_VENV_MARKERS:
        (staging / marker).unlink(missing_ok=True)
    if isinstance(layer, ApplicationSpec):
        copy_modules([layer.launch_module, *layer.support_modules], staging / site_dir)
    lower_dirs = [f"../{lower_targets[name]}" for name in layer.lower_layers]
    write_layer_links(
        staging, site_dir=site_dir, lower_site_dirs=[f"{d}/{site_dir}" for d in lower_dirs]
    )
    make_scripts_relocatable(staging)
    expose_dynlibs(
        staging, exclude=layer.dynlib_exclude, layer_name=layer.build_name, report=report
    )
    # Checked in the order the launcher puts the lower dynlib folders on the search path.
    check_lower_needs(
        staging,
        [build_dir / d.removeprefix("../") for d in lower_dirs],
        layer_name=layer.build_name,
        report=report,
    )
    lower_dynlibs = [
        f"{d}/{layout.DYNLIB_DIR}"
        for d in lower_dirs
        if has_dynlibs(build_dir / d.removeprefix("../"))
    ]
    app_python = (
        write_app_python(staging, lower_dynlibs) if isinstance(layer, ApplicationSpec) else None
    )
    write_layer_metadata(
        staging,
        LayerMetadata.for_venv(
            py_version=runtime_meta.py_version,
            base_python=f"../{runtime_target}/{runtime_meta.python}",
            site_dir=site_dir,
            pylib_dirs=[f"{d}/{site_dir}" for d in lower_dirs],
            dynlib_dirs=lower_dynlibs,
            launch_module=layer.launch_module_name if isinstance(layer, ApplicationSpec) else None,
            app_python=app_python,
        ),
    )
    return runtime_meta.py_version, "venv"


def _install_postinstall(layer_dir: Path) -> None:
    script = resources.files("venvlayers._injected").joinpath("postinstall.py").read_bytes()
    (layer_dir / layout.POSTINSTALL_SCRIPT).write_bytes(script)
