"""Take a folder whose layers were placed by ``local-export`` as a deployment.

The layers are already in place and made ready; what ``run``, ``verify`` and ``gc`` need
besides is the record a deploy writes, so they treat the folder like any other target.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from venvlayers.contract import LayerKind, read_stack_metadata
from venvlayers.deploy.dirlock import target_lock
from venvlayers.deploy.files import (
    COMPILE_DONE,
    LayerFiles,
    entry_of,
    new_token,
    save_files,
    walk,
    write_marker,
)
from venvlayers.deploy.record import DeployedApp, DeployedLayer, load_record, save_record


def adopt_export(
    folder: Path, *, report: Callable[[str], None] = lambda _m: None
) -> tuple[str, ...]:
    """Record the layers ``folder``'s stack metadata names, and every app whose layers are
    all there; returns the apps' install targets.

    Exported layers come from no archive, so their recorded sha256 is empty: a later
    deploy into the same folder replaces them rather than taking them as its own. Each
    layer's files as they are now become its file record, so ``verify`` finds any later
    change, as it does in a deployment.
    """
    folder = Path(os.path.abspath(folder))
    _, published = read_stack_metadata(folder)
    present = [layer for layer in published if (folder / layer.install_target).is_dir()]
    targets = {layer.install_target for layer in present}
    apps = []
    for layer in present:
        if layer.kind is not LayerKind.APPLICATION:
            continue
        uses = (layer.runtime_layer, *reversed(layer.required_layers), layer.install_target)
        if targets.issuperset(uses):
            apps.append(DeployedApp(layer.layer_name, layer.install_target, uses))
    with target_lock(folder, report):
        tokens = {
            layer.install_target: _record_files(folder, layer.install_target) for layer in present
        }
        record = load_record(folder).with_layers(
            DeployedLayer(
                install_target=layer.install_target,
                layer_name=layer.layer_name,
                kind=layer.kind,
                lock_version=layer.lock_version,
                sha256="",
                token=tokens[layer.install_target],
            )
            for layer in present
        )
        save_record(folder, record.with_apps(apps))
    return tuple(app.install_target for app in apps)


def _record_files(folder: Path, install_target: str) -> str:
    """Mark the exported layer and record its files as they are; returns the token."""
    layer_dir = folder / install_target
    token = new_token()
    write_marker(layer_dir, install_target, "", token)
    seen = walk(layer_dir)
    files = {relative: entry_of(layer_dir, relative, s) for relative, s in seen.items()}
    save_files(folder, LayerFiles(install_target, token, "", files, compile=COMPILE_DONE))
    return token
