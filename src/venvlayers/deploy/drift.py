"""Compare deployed layers with what deploy recorded about them, outside the layers.

Nothing inside a layer is trusted to describe it: the file records under
``DIR/.venvlayers/layers/`` (see deploy/files.py) say what every path held once the
archive was unpacked, postinstall.py ran and byte-compiling finished. Every path in the
folder is compared, modes included, bytecode and empty folders too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers._fs import sha256_file
from venvlayers.deploy.files import (
    COMPILE_PENDING,
    Entry,
    Seen,
    load_files,
    marker_token,
    store_keys,
    walk,
)
from venvlayers.deploy.record import DeployedApp, DeploymentRecord, load_record
from venvlayers.deploy.store import Store, StoreKey
from venvlayers.deploy.trust import trust_problems

# sha256 by (inode, size, mtime): a file linked into several layers and the store is read
# once per verify.
_Hashes = dict[tuple[int, int, int], str]


@dataclass(frozen=True)
class LayerDrift:
    install_target: str
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    # Set when the layer cannot be compared at all (folder or manifest missing, ...).
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and not (self.changed or self.missing or self.unexpected)

    def render(self) -> str:
        if self.problem is not None:
            return f"{self.install_target}: {self.problem}"
        if self.ok:
            return f"{self.install_target}: ok"
        counts = ", ".join(
            f"{len(paths)} {label}"
            for label, paths in (
                ("changed", self.changed),
                ("missing", self.missing),
                ("unexpected", self.unexpected),
            )
            if paths
        )
        lines = [f"{self.install_target}: {counts}"]
        for label, paths in (
            ("changed", self.changed),
            ("missing", self.missing),
            ("unexpected", self.unexpected),
        ):
            lines.extend(f"  {label:<10}  {path}" for path in paths)
        return "\n".join(lines)


@dataclass(frozen=True)
class StaleEntry:
    """A content-store entry whose content no longer hashes to its name: a file was changed
    through one of its links, which changes it in every layer using it."""

    sha256: str
    executable: bool
    layers: tuple[str, ...]

    def render(self) -> str:
        kind = "executable file" if self.executable else "file"
        return (
            f"store: the {kind} {self.sha256[:16]} no longer matches its content hash;"
            f" layers using it: {', '.join(self.layers)} (deploy them again into a new folder)"
        )


@dataclass(frozen=True)
class VerifyReport:
    target: Path
    layers: tuple[LayerDrift, ...]
    # Problems of the deployment as a whole (its signature, see deploy/trust.py).
    problems: tuple[str, ...] = ()
    stale: tuple[StaleEntry, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and not self.stale and all(layer.ok for layer in self.layers)

    def render(self) -> str:
        drifted = sum(not layer.ok for layer in self.layers)
        summary = (
            f"{len(self.layers)} layers match their deployment record"
            if drifted == 0
            else f"{drifted} of {len(self.layers)} layers differ from their deployment record"
        )
        return "\n".join(
            [
                *(layer.render() for layer in self.layers),
                *(entry.render() for entry in self.stale),
                *self.problems,
                summary,
            ]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "target": os.fspath(self.target),
            "ok": self.ok,
            "problems": list(self.problems),
            "store": [
                {"sha256": e.sha256, "executable": e.executable, "layers": list(e.layers)}
                for e in self.stale
            ],
            "layers": {
                layer.install_target: {
                    "ok": layer.ok,
                    "changed": list(layer.changed),
                    "missing": list(layer.missing),
                    "unexpected": list(layer.unexpected),
                    "problem": layer.problem,
                }
                for layer in self.layers
            },
        }


def verify(target: Path, apps: Sequence[str] = ()) -> VerifyReport:
    """Check the layers of the apps named (all deployed apps by default) against the record.

    A name may also be a runtime or framework layer, to check only that layer.
    """
    target = Path(os.path.abspath(target))
    record = load_record(target, required=True)
    layers = _layers_to_check(record, apps, target)
    problems = trust_problems(target, {n: layer.sha256 for n, layer in record.layers.items()})
    hashes: _Hashes = {}
    drifts = tuple(_verify_layer(target, record, name, hashes) for name in layers)
    stale = _stale_entries(target, record, layers, hashes)
    return VerifyReport(target, drifts, tuple(problems), stale)


def _stale_entries(
    target: Path, record: DeploymentRecord, checked: Sequence[str], hashes: _Hashes
) -> tuple[StaleEntry, ...]:
    """The store entries the checked layers use whose content no longer matches their key,
    each with every recorded layer that uses it."""
    users: dict[StoreKey, list[str]] = {}
    for name, known in sorted(record.layers.items()):
        if not known.token:
            continue
        try:
            files = load_files(target, name, known.token)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
        if files is None:
            continue
        for key in store_keys(files):
            users.setdefault(key, []).append(name)
    wanted = set(checked)
    store = Store(target)
    stale = []
    for key, layers in sorted(users.items()):
        if not wanted.intersection(layers):
            continue
        path = store.path(key)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue  # collected, or the layer came from before the store
        digest = _hash(path, info, hashes)
        if digest != key[0] or bool(info.st_mode & 0o100) != key[1]:
            stale.append(StaleEntry(key[0], key[1], tuple(layers)))
    return tuple(stale)


def _hash(path: str, info: os.stat_result, hashes: _Hashes) -> str:
    cache = (info.st_ino, info.st_size, info.st_mtime_ns)
    found = hashes.get(cache)
    if found is None:
        found = hashes[cache] = sha256_file(path)
    return found


def _layers_to_check(record: DeploymentRecord, names: Sequence[str], target: Path) -> list[str]:
    if not names:
        chosen = [app.layers for app in record.apps.values()]
    else:
        chosen = []
        for name in names:
            found = record.resolve(name, target)
            chosen.append(
                found.layers if isinstance(found, DeployedApp) else (found.install_target,)
            )
    ordered: dict[str, None] = {}
    for layers in chosen:
        ordered.update(dict.fromkeys(layers))
    return list(ordered)


def _verify_layer(target: Path, record: DeploymentRecord, name: str, hashes: _Hashes) -> LayerDrift:
    layer_dir = target / name
    if not layer_dir.is_dir():
        return LayerDrift(name, problem="layer folder missing; deploy again")
    known = record.layers.get(name)
    if known is None or not known.token:
        return LayerDrift(
            name, problem="no file record (not unpacked by this deploy); deploy it again"
        )
    if marker_token(layer_dir) != known.token:
        return LayerDrift(
            name,
            problem="not the folder the record names (a deploy was interrupted, or the"
            " folder was replaced); deploy again",
        )
    try:
        files = load_files(target, name, known.token)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return LayerDrift(name, problem=f"its file record is unusable ({exc}); deploy again")
    if files is None:
        return LayerDrift(name, problem="its file record is missing; deploy again")
    if files.compile == COMPILE_PENDING:
        return LayerDrift(
            name, problem="byte-compiling did not finish (deploy interrupted?); deploy again"
        )
    try:
        found = walk(layer_dir)
    except OSError as exc:
        return LayerDrift(name, problem=f"cannot be read ({exc.strerror}); deploy again")
    expected = files.expected()
    changed = sorted(
        path or "."
        for path, entry in expected.items()
        if path in found and not _matches(layer_dir, path, found[path], entry, hashes)
    )
    missing = sorted(path for path in expected if path not in found)
    unexpected = sorted(path for path in found if path not in expected)
    return LayerDrift(name, tuple(changed), tuple(missing), tuple(unexpected))


def _matches(layer_dir: Path, path: str, seen: Seen, entry: Entry, hashes: _Hashes) -> bool:
    if seen.kind != entry.kind:
        return False
    if entry.kind == "l":
        return seen.link == entry.link
    if seen.mode != entry.mode:
        return False
    if entry.kind == "d":
        return True
    if seen.key[1] != entry.size:
        return False
    cache = (seen.key[0], seen.key[1], seen.key[2])
    found = hashes.get(cache)
    if found is None:
        found = hashes[cache] = sha256_file(os.path.join(layer_dir, path))
    return found == entry.sha256
