"""Deploy apps from a published output folder: check, unpack, make ready, move into place.

Order of work, chosen so that a refusal changes nothing and a kill changes nothing in use:

1. the source of every layer that needs unpacking is chosen and opened, and what can be
   checked without unpacking is checked (the archive's file and size; a delta whole, since
   what it carries decides whether it is used);
2. each layer, runtime first, is unpacked into a hidden sibling of its final folder, so the
   relative paths in its metadata (``../cpython@3.11/bin/python3.11``) already resolve;
   every member is checked before it is written, the archive's sha256 is compared at its
   end, and only then does each file take the sha256 the archive's manifest gives it (or
   is hashed) and enter the store (one pass over each archive, see extract.py and
   LayerWriter); a marker with a new token goes into the folder, its postinstall.py runs
   there, what that changed is hashed, the layer's file record is written under
   ``.venvlayers/layers/``, then the folder moves into place;
3. an archive refused while unpacking (or an interrupt) takes the whole deploy back: the
   hidden folders go, every layer placed is taken out again and what it replaced put
   back, the store entries added are removed, and a target this deploy created is removed;
4. the deployment record, naming each layer's token, is written once all are in place,
   and what the new layers replaced is deleted;
5. each layer byte-compiles in the background from the moment it is in place (see
   compile.py); what compiling wrote is added to the layer's file record at the end.

A layer counts as in place only if the record names the published archive *and* the
folder carries the recorded token: after a kill, the folders are checked, not the record.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from venvlayers.contract import LayerPublication
from venvlayers.contract.delta import DELTA_DESCRIPTOR
from venvlayers.contract.kinds import LayerKind
from venvlayers.contract.layer_metadata import read_layer_metadata, resolve_inside
from venvlayers.contract.postinstall import run_postinstall
from venvlayers.deploy.archive_io import SpaceBudget
from venvlayers.deploy.compile import BackgroundCompiler, EarlyCompiler, is_early_source
from venvlayers.deploy.dirlock import LOCK_NAME, target_lock
from venvlayers.deploy.extract import (
    ArchiveRefused,
    LayerWriter,
    Unpacked,
)
from venvlayers.deploy.files import (
    COMPILE_DONE,
    COMPILE_OFF,
    COMPILE_PENDING,
    LayerFiles,
    StatKey,
    changes,
    load_files,
    marker_token,
    new_token,
    prune_files,
    save_files,
    walk,
    write_marker,
)
from venvlayers.deploy.places import Placer, new_partial, recover_leftovers
from venvlayers.deploy.plan import DeployPlan, archive_of, plan_deploy
from venvlayers.deploy.preflight import check_sources, still_stored
from venvlayers.deploy.progress import DeployProgress
from venvlayers.deploy.record import (
    STATE_DIR,
    DeployedApp,
    DeployedLayer,
    DeploymentRecord,
    load_record,
    save_record,
)
from venvlayers.deploy.sources import LayerSource, build_from_manifest
from venvlayers.deploy.steps import StepHook, no_hook
from venvlayers.deploy.store import Store
from venvlayers.deploy.trust import check_plan_signed, check_trust, remember_trust
from venvlayers.errors import DeployError, MetadataError, ToolError


@dataclass(frozen=True)
class DeployResult:
    deployed: tuple[str, ...]  # install targets newly unpacked
    skipped: tuple[str, ...]  # install targets already in place with the same archive
    apps: tuple[str, ...]  # install targets of the apps deployed
    # How layer files were made from the content store ("" when nothing was unpacked).
    link_mode: str = ""
    # Per new layer: "full", "delta" or "store" (see deploy/sources.py).
    sources: dict[str, str] = field(default_factory=dict)


def deploy(
    source: Path,
    target: Path,
    *,
    apps: Sequence[str] = (),
    compile_bytecode: bool = True,
    report: Callable[[str], None] = lambda _m: None,
    progress: DeployProgress | None = None,
    step_hook: StepHook | None = None,
    require_signature: Path | None = None,
    link_mode: str = "auto",
) -> DeployResult:
    """Deploy the apps named (all by default) from the published output ``source``.

    New layers are byte-compiled in the background unless ``compile_bytecode`` is false.
    ``progress`` is told bytes unpacked and layers compiled (see deploy/progress.py);
    ``step_hook`` is called at each step (see deploy/steps.py), for tests.
    ``require_signature``: an allowed-signers file the output must be signed by (a target
    that required one before still does; see deploy/trust.py).
    ``link_mode``: how layer files are made from the content store (see deploy/store.py).
    """
    hook = step_hook or no_hook
    target = Path(os.path.abspath(target))
    had_state = (target / STATE_DIR).is_dir()
    trust = check_trust(source, target, require_signature)
    plan = plan_deploy(source, apps)
    check_plan_signed(trust, plan.layers)
    store = Store(target, link_mode)
    # Each archive stays open from its check to its unpacking: what was checked is what is
    # unpacked, whatever happens to the file's name in between.
    checked: dict[str, LayerSource] = {}
    try:
        # Check before taking the lock, so a refused deploy leaves no trace in ``target``;
        # under the lock, anything a concurrent deploy or gc changed meanwhile is checked too.
        record = load_record(target)
        check_sources(plan, _pending(plan, target, record), checked, target, store, record, report)
        with target_lock(target, report):
            # What a refused deploy must leave, as it is now that no other deploy runs.
            before = _state_before(target, had_state)
            recover_leftovers(target, report)
            store.recover()
            record = load_record(target)
            pending = _pending(plan, target, record)
            space = check_sources(plan, pending, checked, target, store, record, report)
            still_stored(checked, pending, store, target)
            if pending:
                report(store.describe())
            compiler = BackgroundCompiler(
                target, enabled=compile_bytecode, on_done=progress.compiled if progress else None
            )
            work = _Work(
                target, compiler, report, progress, hook, store, Placer(target, hook), space
            )
            try:
                _unpack_in_order(plan, pending, checked, work)
            except BaseException as exc:
                compiler.stop()
                if isinstance(exc, _Refused | KeyboardInterrupt):
                    _take_back(work, before)
                else:
                    # A layer that failed to post-install stops the deploy where it is:
                    # the layers placed before it stay, as the record will find them.
                    work.placer.commit()
                raise
            _finish(plan, pending, record, work)
            remember_trust(target, trust)
    finally:
        for archive in checked.values():
            archive.close()
    deployed = {layer.install_target for layer in pending}
    return DeployResult(
        deployed=tuple(la.install_target for la in plan.layers if la.install_target in deployed),
        skipped=tuple(la.install_target for la in plan.layers if la.install_target not in deployed),
        apps=tuple(app.install_target for app in plan.apps),
        link_mode=store.link_mode if pending else "",
        sources={name: checked[name].kind for name in deployed},
    )


@dataclass
class _Work:
    """What the steps of one deploy share, and what they learn about each new layer."""

    target: Path
    compiler: BackgroundCompiler
    report: Callable[[str], None]
    progress: DeployProgress | None
    hook: StepHook
    store: Store
    placer: Placer
    # What the archives unpacked may still expand to, together.
    space: SpaceBudget
    # Per new layer: its file record, and the stat keys of its paths once post-installed.
    files: dict[str, LayerFiles] = field(default_factory=dict)
    # The layers this deploy has still to move into place (read by other threads).
    unplaced: set[str] = field(default_factory=set)
    # Per venv layer compiled while unpacking: the sources left to compile once placed.
    uncompiled: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[str, dict[str, StatKey]] = field(default_factory=dict)
    # Set when the deploy fails: archives still unpacking stop at their next member.
    stopping: threading.Event = field(default_factory=threading.Event)

    def room(self, count: int) -> None:
        """Count ``count`` more bytes unpacked (see :class:`SpaceBudget`), unless stopping."""
        if self.stopping.is_set():
            raise _Stopped
        self.space.take(count)


def _finish(
    plan: DeployPlan,
    pending: Sequence[LayerPublication],
    record: DeploymentRecord,
    work: _Work,
) -> None:
    """Write the record once every layer is in place, wait for byte-compiling, then add
    what it wrote to each layer's file record."""
    target = work.target
    work.hook("record", "")
    record = record.with_layers(_deployed_layer(layer, work.files) for layer in pending)
    record = record.with_apps(
        DeployedApp(app.layer_name, app.install_target, plan.app_layers(app)) for app in plan.apps
    )
    save_record(target, record)
    prune_files(target, (layer.token for layer in record.layers.values()))
    work.placer.commit()
    to_compile = sum(layer.bytecode is None for layer in pending)
    if to_compile and work.compiler.enabled:
        work.report(f"byte-compiling {to_compile} new layers")
    work.hook("compile", "")
    work.compiler.wait()
    if not work.compiler.enabled:
        return
    compiled = [layer for layer in pending if layer.bytecode is None]
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda layer: _record_compiled(work, layer.install_target), compiled))


def _record_compiled(work: _Work, name: str) -> None:
    """Add what byte-compiling wrote to the layer's file record (hashed: it is read once,
    from the page cache, just after it was written)."""
    layer_dir = work.target / name
    added = changes(layer_dir, work.keys[name], walk(layer_dir))
    files = work.files[name]
    compiled = {**files.compiled}
    compiled.update((path, entry) for path, entry in added.items() if entry is not None)
    postinstall = {**files.postinstall}
    for path in [path for path, entry in added.items() if entry is None]:
        if compiled.pop(path, None) is None:
            postinstall[path] = None
    save_files(
        work.target,
        replace(files, compiled=compiled, postinstall=postinstall, compile=COMPILE_DONE),
    )


def _pending(plan: DeployPlan, target: Path, record: DeploymentRecord) -> list[LayerPublication]:
    """Layers not already in place from the same archive."""

    def in_place(layer: LayerPublication) -> bool:
        known = record.layers.get(layer.install_target)
        sha256 = archive_of(layer).archive_hashes["sha256"]
        if known is None or known.sha256 != sha256 or not known.token:
            return False
        if marker_token(target / layer.install_target) != known.token:
            return False  # another deploy's folder (killed before its record), or none
        try:
            files = load_files(target, layer.install_target, known.token)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return False
        # A deploy killed while compiling: the layer is unpacked again, not half-trusted.
        return files is not None and files.compile != COMPILE_PENDING

    return [layer for layer in plan.layers if not in_place(layer)]


def _unpack_in_order(
    plan: DeployPlan,
    pending: Sequence[LayerPublication],
    checked: dict[str, LayerSource],
    work: _Work,
) -> None:
    """Unpack every pending layer, then ready and place each one, runtime first.

    Unpacking does not depend on the layers beneath, so archives are unpacked side by
    side (decompressing, hashing and writing files free the GIL) while the layers beneath
    are made ready; a layer's postinstall.py runs only once every layer beneath it is in
    place. An archive refused while it is unpacked raises :class:`_Refused` once the
    others stopped; the caller takes the deploy back (:func:`_take_back`).
    """
    target = work.target
    partials = {
        layer.install_target: new_partial(target, layer.install_target) for layer in pending
    }
    work.unplaced.update(partials)
    try:
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            unpacked = {
                layer.install_target: pool.submit(
                    _unpack,
                    checked[layer.install_target],
                    partials[layer.install_target],
                    work,
                    _on_read(work.progress, layer, checked[layer.install_target].size),
                )
                for layer in pending
            }
            for future in unpacked.values():
                # A refused archive stops the others at their next member.
                future.add_done_callback(functools.partial(_stop_on_failure, work.stopping))
            try:
                for layer in pending:
                    name = layer.install_target
                    contents = unpacked[name].result()
                    work.hook("extract", name)
                    _make_ready(layer, partials[name], contents, work)
                    work.hook("postinstall", name)
                    work.placer.move_into_place(partials.pop(name), target / name)
                    work.unplaced.discard(name)
                    if layer.bytecode is None:
                        work.compiler.start(name, work.uncompiled.get(name))
            except BaseException:
                work.stopping.set()
                # The reason to show is the archive refused, not another one stopped.
                for future in unpacked.values():
                    if isinstance(refused := future.exception(), _Refused):
                        raise refused from None
                raise
    finally:
        for partial in partials.values():
            shutil.rmtree(partial, ignore_errors=True)


def _stop_on_failure(stopping: threading.Event, done: Future[Unpacked]) -> None:
    if done.exception() is not None:
        stopping.set()


def _state_before(target: Path, had_state: bool) -> frozenset[str] | None:
    """The names in ``DIR/.venvlayers`` before this deploy (the lock just taken is new if
    there was none); None when this deploy created ``DIR`` itself."""
    state = target / STATE_DIR
    names = frozenset(os.listdir(state))
    if had_state or names != {LOCK_NAME}:
        return names
    return None if os.listdir(target) == [STATE_DIR] else frozenset()


def _take_back(work: _Work, before: frozenset[str] | None) -> None:
    """Undo a deploy refused while unpacking: every layer path as it was, the store as it
    was, and no more in ``DIR`` than there was (a lock file removed with its folder is no
    trouble to a deploy waiting on it; see _fs.exclusive_lock)."""
    work.placer.roll_back()
    work.store.take_back()
    prune_files(work.target, (layer.token for layer in load_record(work.target).layers.values()))
    if before is None:
        shutil.rmtree(work.target, ignore_errors=True)
        return
    state = work.target / STATE_DIR
    for name in set(os.listdir(state)) - before:
        path = state / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if not before:
        shutil.rmtree(state, ignore_errors=True)


def _make_ready(layer: LayerPublication, partial: Path, contents: Unpacked, work: _Work) -> None:
    """Mark the unpacked folder, run its postinstall.py, record what the folder holds."""
    name = layer.install_target
    token = new_token()
    sha256 = archive_of(layer).archive_hashes["sha256"]
    write_marker(partial, name, sha256, token)
    _postinstall(partial, name, work.target, work.report)
    now = walk(partial)
    changed = changes(partial, contents.keys, now)
    # What compiling while unpacking wrote (postinstall.py compiles nothing here).
    compiled = {
        path: entry
        for path, entry in changed.items()
        if entry is not None and "__pycache__" in path.split("/") and path not in contents.entries
    }
    if name in work.uncompiled:
        # What postinstall.py added to site-packages (its path module) is compiled too.
        work.uncompiled[name] += [
            path
            for path, entry in changed.items()
            if entry is not None and entry.kind == "f" and is_early_source(path)
        ]
    files = LayerFiles(
        install_target=name,
        token=token,
        sha256=sha256,
        archive=contents.entries,
        postinstall={path: entry for path, entry in changed.items() if path not in compiled},
        compiled=compiled,
        compile=_compile_state(layer, work.compiler.enabled),
    )
    # Written before the folder moves in: a folder in place always has its record.
    save_files(work.target, files)
    work.files[name] = files
    work.keys[name] = {path: seen.key for path, seen in now.items()}


def _compile_state(layer: LayerPublication, enabled: bool) -> str:
    if layer.bytecode is not None:
        # Its archive shipped the bytecode (publish --bytecode): nothing is left to compile.
        return COMPILE_DONE
    return COMPILE_PENDING if enabled else COMPILE_OFF


def _on_read(
    progress: DeployProgress | None, layer: LayerPublication, size: int
) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return progress.unpacking(layer.install_target, size)


class _Refused(DeployError):
    """An archive refused while unpacking."""


class _Stopped(Exception):
    """An archive left unfinished because the deploy failed elsewhere."""


def _unpack(
    source: LayerSource,
    partial: Path,
    work: _Work,
    on_read: Callable[[int], None] | None = None,
) -> Unpacked:
    name = source.layer.install_target
    told = False

    def before_put() -> None:
        nonlocal told
        if not told:
            told = True
            work.hook("store", name)

    early = _early_compiler(source, partial, work)
    writer = LayerWriter(
        partial,
        store=work.store,
        ready=source.ready,
        sizes=source.sizes or {path: item.size for path, item in source.manifest.items()},
        skip=(DELTA_DESCRIPTOR,) if source.kind == "delta" else (),
        before_put=before_put,
        on_written=early.written if early is not None else None,
        on_bytecode=early.abandon if early is not None else None,
        # One pass: the sha256 that binds the archive's manifest is known only at its end.
        digests_later=source.archive is not None and not source.archive.scanned,
    )
    work.report(f"{name}: unpacking")
    what = source.archive.path if source.archive is not None else name
    try:
        if source.archive is not None:
            source.archive.extract(partial, on_read=on_read, writer=writer, room=work.room)
        if source.kind != "full":
            build_from_manifest(source, partial, writer)
    except ArchiveRefused as exc:
        raise _Refused(f"{what}: refused, {exc}; nothing in {work.target} was changed") from None
    finally:
        writer.close()
        source.close()
        if early is not None:
            early.stop()
            if not early.abandoned:
                work.uncompiled[name] = early.remaining()
    return Unpacked(writer.entries, writer.keys)


def _early_compiler(source: LayerSource, partial: Path, work: _Work) -> EarlyCompiler | None:
    """Compiling while unpacking, for a venv layer that will be compiled anyway, with its
    runtime's interpreter once that is in place (this deploy may be placing it)."""
    layer = source.layer
    if not work.compiler.enabled or layer.bytecode is not None or layer.kind is LayerKind.RUNTIME:
        return None
    # Bytecode of its own: compiled files would collide with its files. (An archive not
    # scanned shows it only while unpacking: the compiler then gives way, see abandon.)
    names = (
        [m.name for m in source.archive.members]
        if source.archive and source.archive.scanned
        else []
    )
    if any("__pycache__" in name.split("/") for name in [*names, *(source.manifest or ())]):
        return None
    runtime = layer.runtime_layer
    runtime_dir = work.target / runtime

    def python() -> Path | None:
        if runtime in work.unplaced:
            return None
        try:
            meta = read_layer_metadata(runtime_dir, runtime)
            return resolve_inside(
                runtime_dir, meta.base_python, work.target, what=f"{runtime}: base_python"
            )
        except (MetadataError, DeployError):
            return None

    return EarlyCompiler(partial, python)


def _postinstall(layer_dir: Path, name: str, target: Path, report: Callable[[str], None]) -> None:
    try:
        # Linking only: compiling waits until the layer is in place (see compile.py).
        run_postinstall(layer_dir, name, target, compile_bytecode=False, report=report)
    except ToolError as exc:
        raise DeployError(f"{exc}\n(deploy stopped; the apps deployed before still work)") from None
    except DeployError as exc:
        raise DeployError(f"{exc}; deploy stopped") from None


def _deployed_layer(layer: LayerPublication, files: dict[str, LayerFiles]) -> DeployedLayer:
    return DeployedLayer(
        install_target=layer.install_target,
        layer_name=layer.layer_name,
        kind=layer.kind,
        lock_version=layer.lock_version,
        sha256=archive_of(layer).archive_hashes["sha256"],
        token=files[layer.install_target].token,
    )
