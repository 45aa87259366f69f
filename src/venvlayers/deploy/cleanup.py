"""Remove apps, and the layers no remaining app needs; never a layer an app uses.

The record is rewritten first, then folders go: a kill in between leaves only folders
nothing uses, which the next ``gc`` removes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from venvlayers import layout
from venvlayers.deploy.dirlock import target_lock
from venvlayers.deploy.places import discard, recover_leftovers
from venvlayers.deploy.record import DeployedApp, load_record, save_record
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
        save_record(target, remaining.without(layers=folders))
        for folder in folders:
            discard(target / folder)
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
        if not entry.name.startswith(".")
        and entry.is_dir()
        and not entry.is_symlink()
        and (entry / layout.LAYER_METADATA).is_file()
    )
    return tuple(sorted(candidates - in_use))


def gc(
    target: Path, *, dry_run: bool = False, report: Callable[[str], None] = lambda _m: None
) -> tuple[str, ...]:
    """Remove the layer folders no deployed app uses; returns their names."""
    target = Path(os.path.abspath(target))
    if dry_run:
        return unused_layers(target)
    with target_lock(target, report):
        recover_leftovers(target, report)
        unused = unused_layers(target)
        save_record(target, load_record(target).without(layers=unused))
        for name in unused:
            discard(target / name)
    return unused
