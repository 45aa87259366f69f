"""Remove apps, and the layers no remaining app needs; never a layer an app uses.

The record is rewritten first, then folders go: a kill in between leaves only folders
nothing uses, which the next ``gc`` removes. ``gc`` refuses while a layer in use is not
the folder the record names: a deploy killed before its record may have moved in an app
that uses layer folders the record does not know yet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from venvlayers import layout
from venvlayers.deploy.dirlock import target_lock
from venvlayers.deploy.files import load_files, marker_token, prune_files, store_keys
from venvlayers.deploy.places import discard, is_layer_path, recover_leftovers
from venvlayers.deploy.record import DeployedApp, DeploymentRecord, load_record, save_record
from venvlayers.deploy.store import Store, StoreKey
from venvlayers.errors import DeployError


def remove_apps(
    target: Path, apps: Sequence[str], *, report: Callable[[str], None] = lambda _m: None
) -> tuple[str, ...]:
    """Remove the named apps and their own layer folders; returns their install targets.

    Lower layers stay until :func:`gc`, since other apps may use them.
    """
    target = Path(os.path.abspath(target))
    with target_lock(target, report):
        recover_leftovers(target, report)
        record = load_record(target, required=True)
        chosen: list[DeployedApp] = []
        for name in apps:
            app = record.find_app(name)
            if app is None:
                known = ", ".join(sorted(a.name for a in record.apps.values())) or "none"
                raise DeployError(f"{target}: no deployed app named {name!r} (apps: {known})")
            if app not in chosen:
                chosen.append(app)
        remaining = record.without(apps=[app.layer_name for app in chosen])
        in_use = remaining.layers_in_use()
        folders = [app.install_target for app in chosen if app.install_target not in in_use]
        kept = remaining.without(layers=folders)
        save_record(target, kept)
        for folder in folders:
            discard(target / folder)
        prune_files(target, (layer.token for layer in kept.layers.values()))
    return tuple(app.install_target for app in chosen)


def unused_layers(target: Path) -> tuple[str, ...]:
    """Layer folders in ``target`` that no deployed app uses.

    Besides the layers in the record, this finds layer folders the record does not know
    (unpacked by a deploy killed before writing it); other folders are never touched.
    """
    record = load_record(target, required=True)
    in_use = record.layers_in_use()
    candidates = set(record.layers)
    candidates.update(
        entry.name
        for entry in target.iterdir()
        if is_layer_path(entry) and (entry / layout.LAYER_METADATA).is_file()
    )
    return tuple(sorted(candidates - in_use))


def _check_in_use(target: Path, record: DeploymentRecord) -> None:
    for name in sorted(record.layers_in_use()):
        known = record.layers.get(name)
        if known is None or not known.token or not (target / name).exists():
            continue  # adopted from an export, or already missing: nothing else uses it
        if marker_token(target / name) != known.token:
            raise DeployError(
                f"{target}: {name} is not the folder the record names (a deploy was"
                " interrupted); deploy again before collecting unused layers"
            )


def gc(
    target: Path, *, dry_run: bool = False, report: Callable[[str], None] = lambda _m: None
) -> tuple[str, ...]:
    """Remove the layer folders no deployed app uses, then the content-store entries no
    remaining layer was unpacked with; returns the layers' names."""
    target = Path(os.path.abspath(target))
    if dry_run:
        _check_in_use(target, load_record(target, required=True))
        return unused_layers(target)
    with target_lock(target, report):
        recover_leftovers(target, report)
        _check_in_use(target, load_record(target, required=True))
        unused = unused_layers(target)
        kept = load_record(target).without(layers=unused)
        save_record(target, kept)
        for name in unused:
            discard(target / name)
        prune_files(target, (layer.token for layer in kept.layers.values()))
        in_use = _store_keys_in_use(target, kept, report)
        if in_use is not None:
            removed, freed = Store(target).prune(in_use)
            if removed:
                report(f"store: removed {removed} files no layer uses ({freed} bytes freed)")
    return unused


def _store_keys_in_use(
    target: Path, record: DeploymentRecord, report: Callable[[str], None]
) -> set[StoreKey] | None:
    """The store keys of every recorded layer; None (collect nothing) when a file record
    cannot be read: a layer may still need what it would name."""
    keys: set[StoreKey] = set()
    for name, layer in record.layers.items():
        if not layer.token:
            continue
        try:
            files = load_files(target, name, layer.token)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            files = None
        if files is None:
            report(f"store: not collected, the file record of {name} is unusable (deploy again)")
            return None
        keys |= store_keys(files)
    return keys
