"""Where each new layer's files come from: the store alone, a delta archive, or the full one.

The cheapest source that the target can complete is taken, per layer:

1. ``store``: the layer's manifest is bound by the published metadata (a layer published
   with deltas names its manifest's sha256) and lies beside the archives in
   ``__venvstacks__/manifests/``, and the store holds every file it lists: no archive is
   read at all;
2. ``delta``: a delta whose archive is in SOURCE, whose manifest (inside it, bound by
   ``manifest_hashes``) lists only files that the delta carries or the store holds. The
   store holds them when the target holds the delta's base (the record names the archive
   sha256 of every deployed layer), or any other layer with the same content;
3. ``full``: the full archive, checked while it is unpacked; where the manifest beside
   the archives is bound, the files it says the store holds are linked, not written (an
   archive's own manifest comes last in it, too late to decide that). Other files whose
   content the store holds become links to the entry once written.

Every store entry a layer takes is hashed before it is used, against the key the manifest
gives: a layer is never made of an entry changed through another layer's link. A delta's
own files are hashed as they are written and must match the manifest. The final list of
members (manifest entries, and the delta's folders) passes the same member checks as a
full archive, before anything in DIR changes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from venvlayers import layout
from venvlayers.contract import MANIFESTS_DIR, DeltaFields, LayerPublication
from venvlayers.contract.delta import DELTA_DESCRIPTOR, DeltaDescriptor
from venvlayers.contract.manifest import MAX_MANIFEST_BYTES, ManifestItem, read_manifest
from venvlayers.deploy.extract import ArchiveRefused, CheckedArchive, LayerWriter
from venvlayers.deploy.members import Member, MemberKind, UnsafeMember, check_members
from venvlayers.deploy.store import Store, StoreKey
from venvlayers.errors import MetadataError

_DELTA_EXTRAS = (layout.LAYER_MANIFEST, DELTA_DESCRIPTOR)


@dataclass
class LayerSource:
    """What one new layer is made from; ``archive`` is held open until unpacked."""

    layer: LayerPublication
    kind: str  # "store", "delta" or "full"
    archive: CheckedArchive | None
    # Layer-relative path -> store key, for the files to take from the store.
    ready: dict[str, StoreKey] = field(default_factory=dict)
    # The layer's manifest, when it is bound by the metadata (store and delta).
    manifest: dict[str, ManifestItem] = field(default_factory=dict)
    manifest_bytes: bytes = b""
    delta: DeltaFields | None = None
    # The size each file of ``ready`` must have in the archive to be taken from the store
    # (default: the manifest's).
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Archive bytes this layer reads to unpack."""
        return 0 if self.archive is None else self.archive.size

    def describe(self) -> str:
        name = self.layer.install_target
        if self.kind == "store":
            return f"{name}: every file is in the store already; no archive is read"
        if self.kind == "delta":
            assert self.delta is not None and self.archive is not None
            return (
                f"{name}: from the delta {self.archive.path.name} ({self.size} bytes) against"
                f" {self.delta.base_install_target}; {len(self.ready)} files from the store"
            )
        reused = f"; {len(self.ready)} files from the store" if self.ready else ""
        return f"{name}: from {self.archive.path.name if self.archive else '?'}{reused}"

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


class SourceRefused(Exception):
    """No source can make the layer; ``str()`` is the one line to show."""


def choose_source(
    layer: LayerPublication,
    *,
    root: Path,
    store: Store,
    held: Collection[str],
    open_archive: Callable[[str, int, str, Collection[str], bool], CheckedArchive],
    full_path: Path,
    report: Callable[[str], None],
) -> LayerSource:
    """The cheapest source for ``layer`` (see the module docstring).

    ``held``: archive sha256s of the layers the target holds; ``open_archive(name, size,
    sha256, capture, scan)`` opens and checks a published archive (raising
    :class:`ArchiveRefused`), whole if ``scan``.
    """
    bound = {delta.manifest_sha256 for delta in layer.deltas}
    manifest_bytes = _beside_manifest(root, layer, bound)
    manifest: dict[str, ManifestItem] = {}
    ready: dict[str, StoreKey] = {}
    if manifest_bytes is not None:
        manifest = _manifest(manifest_bytes, layer)
        ready = _ready(store, manifest)
        if len(ready) == _file_count(manifest):
            members = _members_of(layer.install_target, manifest, [])
            _check_final(layer, members)
            return LayerSource(layer, "store", None, ready, manifest, manifest_bytes)
    reasons = []
    for delta in layer.deltas:
        if delta.base_archive_sha256 not in held and manifest_bytes is None:
            reasons.append(f"the target does not hold its base {delta.base_install_target}")
            continue
        try:
            source = _delta_source(layer, delta, store, open_archive)
        except ArchiveRefused as exc:
            reasons.append(f"{delta.archive_name} {exc}")
            continue
        if isinstance(source, str):
            reasons.append(source)
            continue
        return source
    try:
        # Checked while it is unpacked, in one pass (see extract.py).
        archive = open_archive(
            layer.archive.archive_name if layer.archive else "",
            layer.archive.archive_size if layer.archive else 0,
            layer.archive.archive_hashes["sha256"] if layer.archive else "",
            (),
            False,
        )
    except ArchiveRefused as exc:
        message = f"{full_path}: refused, {exc}"
        if layer.deltas and not full_path.exists():
            tried = "; ".join(reasons)
            message = (
                f"{layer.install_target}: the full archive {full_path} is missing and no delta"
                f" of it applies ({tried})"
            )
        raise SourceRefused(message) from None
    if reasons:
        report(f"{layer.install_target}: no delta applies ({'; '.join(reasons)})")
    # The files the manifest beside the archives (when bound) says the store holds are
    # linked from it, not written: read past, where the archive agrees on size and mode.
    sizes = {path: manifest[path].size for path in ready}
    return LayerSource(layer, "full", archive, ready, sizes=sizes)


def _delta_source(
    layer: LayerPublication,
    delta: DeltaFields,
    store: Store,
    open_archive: Callable[[str, int, str, Collection[str], bool], CheckedArchive],
) -> LayerSource | str:
    archive = open_archive(
        delta.archive_name, delta.archive_size, delta.archive_sha256, _DELTA_EXTRAS, True
    )
    try:
        data = archive.captured.get(layout.LAYER_MANIFEST)
        if data is None or hashlib.sha256(data).hexdigest() != delta.manifest_sha256:
            raise ArchiveRefused("does not carry the manifest its metadata names")
        descriptor_data = archive.captured.get(DELTA_DESCRIPTOR)
        if descriptor_data is None:
            raise ArchiveRefused(f"carries no {DELTA_DESCRIPTOR}")
        try:
            descriptor = DeltaDescriptor.from_json(
                _json(descriptor_data), f"{delta.archive_name}: {DELTA_DESCRIPTOR}"
            )
        except MetadataError as exc:
            raise ArchiveRefused(str(exc)) from None
        if descriptor.base_archive_sha256 != delta.base_archive_sha256:
            raise ArchiveRefused("names another base than its metadata")
        manifest = _manifest(data, layer)
        carried = {}
        for member in archive.members:
            relative = member.name.removeprefix("./").rstrip("/").partition("/")[2]
            if member.kind is MemberKind.DIR or relative in _DELTA_EXTRAS:
                continue
            item = manifest.get(relative)
            if item is None or item.is_file != (member.kind is MemberKind.FILE):
                raise ArchiveRefused(f"holds {relative!r}, which its manifest does not list")
            carried[relative] = item
        needed = {path: item for path, item in manifest.items() if path not in carried}
        ready = _ready(store, needed)
        lacking = _file_count(needed) - len(ready)
        if lacking:
            archive.close()
            return (
                f"the target does not hold its base {delta.base_install_target} (nor the"
                f" {lacking} files {delta.archive_name} lacks)"
            )
        dirs = [m for m in archive.members if m.kind is MemberKind.DIR]
        _check_final(layer, _members_of(layer.install_target, manifest, dirs))
    except BaseException:
        archive.close()
        raise
    return LayerSource(layer, "delta", archive, ready, manifest, data, delta)


def _json(data: bytes) -> object:
    import json

    try:
        return json.loads(data)
    except ValueError as exc:
        raise ArchiveRefused(f"has an unreadable {DELTA_DESCRIPTOR} ({exc})") from None


def _beside_manifest(root: Path, layer: LayerPublication, bound: set[str]) -> bytes | None:
    """The manifest beside the archives, if the metadata binds it by its hash."""
    if not bound:
        return None
    path = root / MANIFESTS_DIR / f"{layer.install_target}.json"
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MANIFEST_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() in bound else None


def _manifest(data: bytes, layer: LayerPublication) -> dict[str, ManifestItem]:
    try:
        return read_manifest(data, f"{layer.install_target}: {layout.LAYER_MANIFEST}")
    except MetadataError as exc:
        raise SourceRefused(f"{exc}") from None


def _file_count(items: Mapping[str, ManifestItem]) -> int:
    return sum(item.is_file for item in items.values())


def _ready(store: Store, wanted: Mapping[str, ManifestItem]) -> dict[str, StoreKey]:
    """Path -> key for the ``wanted`` files whose store entry exists and matches its key."""
    keys = {path: (item.sha256, item.executable) for path, item in wanted.items() if item.is_file}
    good = store.check_many(set(keys.values()))
    return {path: key for path, key in keys.items() if key in good}


def _members_of(top: str, manifest: Mapping[str, ManifestItem], dirs: list[Member]) -> list[Member]:
    members = [Member(top, MemberKind.DIR), *dirs]
    for path, item in sorted(manifest.items()):
        if item.is_file:
            members.append(Member(f"{top}/{path}", MemberKind.FILE, size=item.size))
        else:
            members.append(Member(f"{top}/{path}", MemberKind.SYMLINK, link=item.link))
    members.append(Member(f"{top}/{layout.LAYER_MANIFEST}", MemberKind.FILE))
    return members


def _check_final(layer: LayerPublication, members: list[Member]) -> None:
    """The layer a manifest describes must pass the checks a full archive passes."""
    try:
        check_members(members, layer.install_target, (layer.runtime_layer, *layer.required_layers))
    except UnsafeMember as exc:
        raise SourceRefused(f"{layer.install_target}: its manifest: {exc}") from None


def build_from_manifest(source: LayerSource, dest: Path, writer: LayerWriter) -> None:
    """Complete the layer in ``dest`` from the manifest: files from the store, symlinks,
    the manifest itself; then check every file against the manifest."""
    assert source.manifest
    done = writer.entries
    for path, item in source.manifest.items():
        if path in done:
            continue
        if item.is_file:
            writer.placed(path, source.ready[path], item.size)
        else:
            writer.symlink(path, item.link)
    if layout.LAYER_MANIFEST not in done:
        data = source.manifest_bytes
        writer.file(
            Member(layout.LAYER_MANIFEST, MemberKind.FILE, size=len(data)),
            layout.LAYER_MANIFEST,
            iter([data]),
            executable=False,
        )
    writer.finish()
    for path, item in source.manifest.items():
        entry = done.get(path)
        if item.is_file:
            mismatch = (
                entry is None
                or entry.kind != "f"
                or entry.sha256 != item.sha256
                or bool(entry.mode & 0o100) != item.executable
            )
        else:
            mismatch = entry is None or entry.kind != "l" or entry.link != item.link
        if mismatch:
            raise ArchiveRefused(f"{path!r} does not match the layer's manifest")
    extra = [
        path
        for path, entry in done.items()
        if entry.kind != "d" and path not in source.manifest and path != layout.LAYER_MANIFEST
    ]
    if extra:
        raise ArchiveRefused(f"{extra[0]!r} is not in the layer's manifest")
