"""Which published layers a deploy needs, in the order they must be made ready."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from venvlayers import layout
from venvlayers.contract import (
    STACK_METADATA,
    ArchiveFields,
    LayerKind,
    LayerPublication,
    read_stack_metadata,
)
from venvlayers.deploy.record import STATE_DIR
from venvlayers.errors import DeployError

_KIND_ORDER = {LayerKind.RUNTIME: 0, LayerKind.FRAMEWORK: 1, LayerKind.APPLICATION: 2}


@dataclass(frozen=True)
class DeployPlan:
    root: Path
    apps: tuple[LayerPublication, ...]
    # Runtimes, then frameworks (lower ones first), then apps: each layer's lower layers
    # are in place before its postinstall.py runs.
    layers: tuple[LayerPublication, ...]

    def app_layers(self, app: LayerPublication) -> tuple[str, ...]:
        """Install targets the app uses, from the runtime upward, the app itself last."""
        return (app.runtime_layer, *reversed(app.required_layers), app.install_target)

    def archive_path(self, layer: LayerPublication) -> Path:
        return self.root / archive_of(layer).archive_name


def archive_of(layer: LayerPublication) -> ArchiveFields:
    if layer.archive is None:
        raise DeployError(
            f"{layer.install_target}: published without an archive (a local export?);"
            " deploy from the output of `venvlayers publish`"
        )
    if not layer.archive.archive_hashes.get("sha256"):
        raise DeployError(f"{layer.install_target}: the published metadata has no sha256")
    return layer.archive


def app_matches(layer: LayerPublication, name: str) -> bool:
    short = layer.layer_name.removeprefix(LayerKind.APPLICATION.build_prefix)
    return name in (short, layer.layer_name, layer.install_target)


def plan_deploy(source: Path, apps: Sequence[str] = ()) -> DeployPlan:
    """The apps named (all by default) and every layer they need, from published ``source``."""
    if not (source / STACK_METADATA).is_file() and not _is_metadata_file(source):
        raise DeployError(not_published_output(source))
    root, published = read_stack_metadata(source)
    by_target = {layer.install_target: layer for layer in published}
    all_apps = [layer for layer in published if layer.kind is LayerKind.APPLICATION]
    chosen = _choose_apps(all_apps, apps, source)
    ordered: dict[str, LayerPublication] = {}

    def visit(install_target: str, needed_by: str) -> None:
        if install_target in ordered:
            return
        layer = by_target.get(install_target)
        if layer is None:
            raise DeployError(f"{needed_by}: needs layer {install_target}, not published in {root}")
        for lower in (layer.runtime_layer, *reversed(layer.required_layers)):
            if lower != install_target:
                visit(lower, install_target)
        ordered[install_target] = layer

    for app in chosen:
        visit(app.install_target, app.install_target)
    layers = sorted(ordered.values(), key=lambda layer: _KIND_ORDER[layer.kind])
    for layer in layers:
        archive_of(layer)
    return DeployPlan(root=root, apps=tuple(chosen), layers=tuple(layers))


def _choose_apps(
    all_apps: list[LayerPublication], names: Sequence[str], source: Path
) -> list[LayerPublication]:
    if not all_apps:
        raise DeployError(f"{source}: the published stack has no applications to deploy")
    if not names:
        return all_apps
    chosen: list[LayerPublication] = []
    for name in names:
        match = next((app for app in all_apps if app_matches(app, name)), None)
        if match is None:
            known = ", ".join(app.layer_name.removeprefix("app-") for app in all_apps)
            raise DeployError(f"{source}: no app named {name!r} is published (apps: {known})")
        if match not in chosen:
            chosen.append(match)
    return chosen


def _is_metadata_file(source: Path) -> bool:
    return source.is_file() and source.name == Path(STACK_METADATA).name


def not_published_output(source: Path) -> str:
    """Why ``source`` is not a published output, from what it does hold, and what to deploy."""
    if not source.exists() and not source.is_symlink():
        return (
            f"{source}: no such file or folder (deploy the output folder of `venvlayers publish`)"
        )
    if not source.is_dir():
        spec_dir = source.parent if source.name == layout.SPEC_FILENAME else None
        if spec_dir is None:
            return (
                f"{source}: a file, not a published output folder (deploy the folder"
                f" `venvlayers publish` wrote, holding {STACK_METADATA})"
            )
        source = spec_dir
    if (source / layout.SPEC_FILENAME).is_file():
        output = source / layout.DEFAULT_OUTPUT_DIR
        if (output / STACK_METADATA).is_file():
            return f"{source}: a stack specification folder; deploy its published output {output}"
        return (
            f"{source}: a stack specification folder, not published output; run"
            f" `venvlayers publish {source}`, then deploy {output}"
        )
    built = sorted(
        p.name.removesuffix(layout.BUILD_RECORD_SUFFIX)
        for p in source.glob(f"*{layout.BUILD_RECORD_SUFFIX}")
    )
    if built:
        output = source.parent / layout.DEFAULT_OUTPUT_DIR
        spec = source.parent / layout.SPEC_FILENAME
        step = (
            f"deploy {output}"
            if (output / STACK_METADATA).is_file()
            else f"run `venvlayers publish {spec if spec.is_file() else 'SPEC'}`, then deploy"
            f" its output ({output} by default)"
        )
        return f"{source}: a build folder (built layers: {', '.join(built)}), not published output; {step}"
    if (source / STATE_DIR).is_dir():
        return f"{source}: a deployment target, not published output; deploy from a publish output folder"
    return (
        f"{source}: no {STACK_METADATA} here, and nothing else venvlayers knows"
        " (deploy the folder `venvlayers publish` wrote)"
    )
