"""Before the target changes: choose and open the source of each layer to unpack.

Run twice by a deploy: before its lock is taken, so that a source refused leaves no trace
in the target, and again under the lock for the layers a concurrent deploy or gc changed
meanwhile. Full archives are only opened here (checked while they unpack); deltas are
checked whole (see deploy/sources.py and deploy/extract.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from venvlayers.contract import LayerPublication
from venvlayers.deploy.archive_io import SpaceBudget
from venvlayers.deploy.extract import ArchiveRefused, CheckedArchive, check_archive, free_space
from venvlayers.deploy.plan import DeployPlan
from venvlayers.deploy.record import DeploymentRecord
from venvlayers.deploy.sources import LayerSource, SourceRefused, choose_source
from venvlayers.deploy.store import Store
from venvlayers.errors import DeployError


def check_sources(
    plan: DeployPlan,
    layers: Sequence[LayerPublication],
    checked: dict[str, LayerSource],
    target: Path,
    store: Store,
    record: DeploymentRecord,
    report: Callable[[str], None],
) -> SpaceBudget:
    """Choose and check the source of every layer not checked yet, side by side (hashing
    and zstd free the GIL); see deploy/sources.py.

    Each archive may expand to no more than the space free in ``target``, and together they
    must fit in it: an archive is refused as soon as it is found to need more, before the
    disk is full. Returns what the archives still to unpack may expand to.
    """
    todo = [layer for layer in layers if layer.install_target not in checked]
    for layer in todo:
        report(f"{layer.install_target}: checking what it needs")
    space = free_space(target)
    held = {known.sha256 for name, known in record.layers.items() if (target / name).is_dir()}
    with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1) or 1) as pool:
        results = list(
            pool.map(lambda layer: _choose(plan, layer, space, store, held, report), todo)
        )
    for layer, result in zip(todo, results, strict=True):
        if isinstance(result, LayerSource):
            checked[layer.install_target] = result
            report(result.describe())
    failures = [result for result in results if isinstance(result, str)]
    if failures:
        raise DeployError(f"{failures[0]}; nothing in {target} was changed")
    # What the scanned archives expand to is known now; the others are counted as they
    # are unpacked, against what is left.
    budget = SpaceBudget(space)
    for layer in layers:
        archive = checked[layer.install_target].archive
        if archive is not None and archive.scanned:
            try:
                budget.take(archive.expanded)
            except ArchiveRefused as exc:
                raise DeployError(
                    f"{archive.path}: refused, {exc}; free some space or deploy elsewhere"
                    f" (nothing in {target} was changed)"
                ) from None
    return budget


def _choose(
    plan: DeployPlan,
    layer: LayerPublication,
    space: int,
    store: Store,
    held: set[str],
    report: Callable[[str], None],
) -> LayerSource | str:
    """The layer's source, its archive (if any) checked and open; or why none will do."""

    def open_archive(
        name: str, size: int, sha256: str, capture: Collection[str], scan: bool
    ) -> CheckedArchive:
        return check_archive(
            plan.root / name,
            size=size,
            sha256=sha256,
            top=layer.install_target,
            root=plan.root,
            space=space,
            lower=(layer.runtime_layer, *layer.required_layers),
            capture=capture,
            scan=scan,
        )

    try:
        return choose_source(
            layer,
            root=plan.root,
            store=store,
            held=held,
            open_archive=open_archive,
            full_path=plan.archive_path(layer),
            report=report,
        )
    except ArchiveRefused as exc:
        return f"{plan.archive_path(layer)}: refused, {exc}"
    except SourceRefused as exc:
        return str(exc)


def still_stored(
    checked: dict[str, LayerSource],
    pending: Sequence[LayerPublication],
    store: Store,
    target: Path,
) -> None:
    """The entries chosen before the lock was taken are still there (no gc ran meanwhile)."""
    for layer in pending:
        for key in checked[layer.install_target].ready.values():
            if not os.path.isfile(store.path(key)):
                raise DeployError(
                    f"{target}: the content store changed while this deploy waited for the"
                    f" lock; deploy again (nothing in {target} was changed)"
                )
