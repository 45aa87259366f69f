"""Deploy apps from a published output folder: check, unpack, make ready, move into place.

Order of work, chosen so that a refusal changes nothing and a kill changes nothing in use:

1. every archive that needs unpacking is checked (size, sha256, every member) first;
2. each layer, runtime first, is unpacked into a hidden sibling of its final folder, so the
   relative paths in its metadata (``../cpython@3.11/bin/python3.11``) already resolve;
   its postinstall.py runs there, then the folder moves into place;
3. the deployment record is written last.

Each layer starts byte-compiling in the background once it is in place (see compile.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from venvlayers.contract import LayerPublication
from venvlayers.contract.postinstall import run_postinstall
from venvlayers.deploy import _faults
from venvlayers.deploy.compile import BackgroundCompiler
from venvlayers.deploy.dirlock import target_lock
from venvlayers.deploy.extract import ArchiveRefused, extract_archive, inspect_archive
from venvlayers.deploy.places import move_into_place, new_partial, recover_leftovers
from venvlayers.deploy.plan import DeployPlan, archive_of, plan_deploy
from venvlayers.deploy.record import (
    DeployedApp,
    DeployedLayer,
    DeploymentRecord,
    load_record,
    save_record,
)
from venvlayers.errors import DeployError, ToolError


@dataclass(frozen=True)
class DeployResult:
    deployed: tuple[str, ...]  # install targets newly unpacked
    skipped: tuple[str, ...]  # install targets already in place with the same archive
    apps: tuple[str, ...]  # install targets of the apps deployed


def deploy(
    source: Path,
    target: Path,
    *,
    apps: Sequence[str] = (),
    compile_bytecode: bool = True,
    report: Callable[[str], None] = lambda _m: None,
) -> DeployResult:
    """Deploy the apps named (all by default) from the published output ``source``.

    New layers are byte-compiled last, in one pass, unless ``compile_bytecode`` is false
    or ``VENVLAYERS_NO_COMPILE=1`` is set.
    """
    plan = plan_deploy(source, apps)
    target = Path(os.path.abspath(target))
    checked: set[str] = set()
    # Check before taking the lock, so a refused deploy leaves no trace in ``target``;
    # under the lock, anything a concurrent deploy or gc changed meanwhile is checked too.
    _check_archives(plan, _pending(plan, target, load_record(target)), checked, target, report)
    with target_lock(target, report):
        recover_leftovers(target, report)
        record = load_record(target)
        pending = _pending(plan, target, record)
        _check_archives(plan, pending, checked, target, report)
        compiler = BackgroundCompiler(target, enabled=compile_bytecode)
        try:
            _unpack_in_order(plan, pending, target, compiler, report)
        except BaseException:
            compiler.stop()
            raise
        _faults.die_if_requested("record")
        record = record.with_layers(_deployed_layer(layer) for layer in pending)
        record = record.with_apps(
            DeployedApp(app.layer_name, app.install_target, plan.app_layers(app))
            for app in plan.apps
        )
        save_record(target, record)
        if pending and compiler.enabled:
            report(f"byte-compiling {len(pending)} new layers")
        compiler.wait()
    deployed = {layer.install_target for layer in pending}
    return DeployResult(
        deployed=tuple(la.install_target for la in plan.layers if la.install_target in deployed),
        skipped=tuple(la.install_target for la in plan.layers if la.install_target not in deployed),
        apps=tuple(app.install_target for app in plan.apps),
    )


def _pending(plan: DeployPlan, target: Path, record: DeploymentRecord) -> list[LayerPublication]:
    """Layers not already in place from the same archive."""

    def in_place(layer: LayerPublication) -> bool:
        known = record.layers.get(layer.install_target)
        sha256 = archive_of(layer).archive_hashes["sha256"]
        return (
            known is not None
            and known.sha256 == sha256
            and (target / layer.install_target).is_dir()
        )

    return [layer for layer in plan.layers if not in_place(layer)]


def _check_archives(
    plan: DeployPlan,
    layers: Sequence[LayerPublication],
    checked: set[str],
    target: Path,
    report: Callable[[str], None],
) -> None:
    """Check every archive not checked yet, side by side (hashing and zstd free the GIL)."""
    todo = [layer for layer in layers if layer.install_target not in checked]
    for layer in todo:
        report(f"{layer.install_target}: checking {archive_of(layer).archive_name}")
    with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1) or 1) as pool:
        failures = [
            failure
            for failure in pool.map(lambda layer: _check_archive(plan, layer), todo)
            if failure
        ]
    if failures:
        raise DeployError(f"{failures[0]}; nothing in {target} was changed")
    checked.update(layer.install_target for layer in todo)


def _check_archive(plan: DeployPlan, layer: LayerPublication) -> str | None:
    """Why the layer's archive is refused, or None when it is sound."""
    archive = archive_of(layer)
    try:
        inspect_archive(
            plan.archive_path(layer),
            size=archive.archive_size,
            sha256=archive.archive_hashes["sha256"],
            top=layer.install_target,
        )
    except ArchiveRefused as exc:
        return f"{plan.archive_path(layer)}: refused, {exc}"
    return None


def _unpack_in_order(
    plan: DeployPlan,
    pending: Sequence[LayerPublication],
    target: Path,
    compiler: BackgroundCompiler,
    report: Callable[[str], None],
) -> None:
    """Unpack every pending layer, then ready and place each one, runtime first.

    Unpacking does not depend on the layers beneath, so archives are unpacked side by
    side (decompressing and writing files free the GIL) while the layers beneath are made
    ready; a layer's postinstall.py runs only once every layer beneath it is in place.
    """
    partials = {
        layer.install_target: new_partial(target, layer.install_target) for layer in pending
    }
    try:
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            unpacked = {
                layer.install_target: pool.submit(
                    _unpack, plan, layer, partials[layer.install_target], report
                )
                for layer in pending
            }
            for layer in pending:
                name = layer.install_target
                unpacked[name].result()
                _faults.die_if_requested("extract", name)
                _postinstall(partials[name], name, target, report)
                _faults.die_if_requested("postinstall", name)
                move_into_place(partials.pop(name), target / name)
                compiler.start(name)
    finally:
        for partial in partials.values():
            shutil.rmtree(partial, ignore_errors=True)


def _unpack(
    plan: DeployPlan, layer: LayerPublication, partial: Path, report: Callable[[str], None]
) -> None:
    name = layer.install_target
    report(f"{name}: unpacking")
    try:
        extract_archive(
            plan.archive_path(layer),
            partial,
            sha256=archive_of(layer).archive_hashes["sha256"],
            top=name,
        )
    except ArchiveRefused as exc:
        raise DeployError(
            f"{plan.archive_path(layer)}: {exc}; deploy stopped, run it again to finish"
        ) from None


def _postinstall(layer_dir: Path, name: str, target: Path, report: Callable[[str], None]) -> None:
    try:
        # Linking only: compiling waits until the layer is in place (see compile.py).
        run_postinstall(layer_dir, name, target, compile_bytecode=False, report=report)
    except ToolError as exc:
        raise DeployError(f"{exc}\n(deploy stopped; the apps deployed before still work)") from None
    except DeployError as exc:
        raise DeployError(f"{exc}; deploy stopped") from None


def _deployed_layer(layer: LayerPublication) -> DeployedLayer:
    return DeployedLayer(
        install_target=layer.install_target,
        layer_name=layer.layer_name,
        kind=layer.kind,
        lock_version=layer.lock_version,
        sha256=archive_of(layer).archive_hashes["sha256"],
    )
