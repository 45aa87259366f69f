"""``lock_stack``: lock a stack's layers bottom-up, each constrained by the layers beneath."""

from __future__ import annotations

import datetime as dt
import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from venvlayers._fs import hash_bytes, write_text_if_changed
from venvlayers.environment import Environment
from venvlayers.errors import LockError
from venvlayers.lock.files import LockMeta, lock_files, write_meta
from venvlayers.lock.inputs import exclude_newer, exclude_newer_time, format_time
from venvlayers.lock.layer_resolve import ResolveRequest, resolve_layer
from venvlayers.lock.model import LayerLock, LockedPackage, LockResult
from venvlayers.lock.narrow import LayerTarget
from venvlayers.lock.pylock import LockDocument, parse, render, same_resolution
from venvlayers.lock.status import LayerCheck, StatusChecker, layer_lock
from venvlayers.lock.summary import render_summary
from venvlayers.runtime import check_runtime_versions
from venvlayers.spec.model import LayerSpec, StackSpec

Report = Callable[[str], None]


@dataclass(frozen=True)
class _Options:
    allow_missing: bool
    local_wheels: Path | None
    no_index: bool
    report: Report


def lock_stack(
    stack: StackSpec,
    *,
    include: Sequence[str] = (),
    if_needed: bool = False,
    reset_lock: Sequence[str] = (),
    allow_missing: bool = False,
    local_wheels: Path | None = None,
    no_index: bool = False,
    report: Report = lambda _m: None,
    check_only: bool = False,
    environment: Environment | None = None,
) -> list[LockResult]:
    """Lock the enabled layers of ``stack`` (or those ``include`` selects) with uv.

    ``include``: layers matching a pattern and the layers above them are relocked; the
    layers beneath are locked only if they need it. ``if_needed``: only layers without a
    valid lock. ``reset_lock``: those layers relock from scratch, without their old pins
    as preferences. Unchanged results rewrite nothing. ``check_only``: lock nothing, write
    nothing; each selected layer's result says whether its lock is ``stale``.
    """
    # Offline and quick: a runtime no source provides fails here, not at the end of a build.
    check_runtime_versions(stack.select(include), environment=environment)
    if check_only:
        return _check_only(stack, include)
    options = _Options(allow_missing, local_wheels, no_index, report)
    relock = _relock_set(stack, include)
    reset = {layer.build_name for layer in stack.layers() if _matches(layer, reset_lock)}
    checker = StatusChecker(stack)
    locks: dict[str, LayerLock] = {}
    results = []
    for layer in stack.select(include):
        if not layer.enabled:
            continue
        check = checker.check(layer)
        needed_only = if_needed or layer.build_name not in relock
        is_reset = layer.build_name in reset
        if needed_only and check.status.valid and not is_reset:
            results.append(_skipped(stack, layer, check))
            continue
        started = time.monotonic()
        lowers = [_lower_lock(stack, checker, locks, name) for name in layer.lower_layers]
        if needed_only and check.version_only and not is_reset:
            result, lock = _bump_version(stack, layer, check, options)
        else:
            report(f"{layer.build_name}: locking ({check.status.reason})")
            result, lock = _lock_layer(stack, layer, check, lowers, options, reset=is_reset)
        locks[layer.build_name] = lock
        checker.forget(layer)
        results.append(
            replace(
                result,
                reason=check.status.reason,
                lock_path=lock_files(stack, layer).lock_path,
                seconds=time.monotonic() - started,
            )
        )
    return results


def _check_only(stack: StackSpec, include: Sequence[str]) -> list[LockResult]:
    checker = StatusChecker(stack)
    results = []
    for layer in stack.select(include):
        if layer.enabled:
            check = checker.check(layer)
            result = _skipped(stack, layer, check)
            results.append(replace(result, stale=not check.status.valid))
    return results


def _lock_layer(
    stack: StackSpec,
    layer: LayerSpec,
    check: LayerCheck,
    lowers: Sequence[LayerLock],
    options: _Options,
    *,
    reset: bool,
) -> tuple[LockResult, LayerLock]:
    if check.inputs is None:
        raise LockError(check.status.reason)
    files = lock_files(stack, layer)
    runtime = stack.runtime_of(layer).python_implementation
    target = LayerTarget(
        platforms=layer.platforms,
        implementation=runtime.implementation,
        feature_version=runtime.feature_version,
        linux_target=layer.linux_target,
        macosx_target=layer.macosx_target,
    )
    request = ResolveRequest(
        stack=stack,
        layer=layer,
        requirements=check.inputs.requirements,
        target=target,
        lowers=lowers,
        preferences=() if reset else _previous_packages(check),
        lock_folder=files.folder,
        local_wheels=options.local_wheels,
        no_index=options.no_index,
    )
    packages = resolve_layer(request, allow_missing=options.allow_missing, report=options.report)
    doc = LockDocument(
        build_name=layer.build_name,
        implementation=runtime.implementation,
        python_version=runtime.feature_version,
        platforms=layer.platforms,
        linux_target=layer.linux_target,
        macosx_target=layer.macosx_target,
        packages=tuple(packages),
    )
    # The same resolution keeps the committed bytes, whichever uv or venvlayers release
    # wrote them: nothing is rewritten and a versioned layer keeps its lock_version.
    text = check.lock_text if same_resolution(check.lock_text, doc) else render(doc)
    assert text is not None
    meta = _new_meta(stack, layer, check, text)
    # The metadata goes last: until it is written, the new lock reads as invalid.
    wrote = write_text_if_changed(files.lock_path, text)
    summary = render_summary(
        layer.build_name, f"{runtime.implementation} {runtime.feature_version}",
        layer.platforms, packages,
    )  # fmt: skip
    wrote = write_text_if_changed(files.summary_path, summary) or wrote
    wrote = write_meta(files.meta_path, meta) or wrote
    options.report(f"{layer.build_name}: {'lock updated' if wrote else 'lock unchanged'}")
    result = LockResult(
        layer.build_name, changed=wrote, lock_version=meta.lock_version, skipped=False
    )
    return result, layer_lock(stack, layer, text, meta)


def _new_meta(stack: StackSpec, layer: LayerSpec, check: LayerCheck, text: str) -> LockMeta:
    assert check.inputs is not None
    old = check.meta
    content_changed = check.lock_text != text
    if not layer.versioned or old is None:
        version = 1
    elif content_changed or old.version_inputs_hash != check.inputs.version_inputs_hash:
        version = old.lock_version + 1
    else:
        version = old.lock_version
    locked_at = exclude_newer_time(exclude_newer(stack))
    if locked_at is None:
        keep = old is not None and not content_changed
        locked_at = old.locked_at if keep and old else format_time(dt.datetime.now(dt.UTC))
    return LockMeta(
        requirements_hash=hash_bytes(text.encode("utf-8")),
        lock_input_hash=check.inputs.lock_input_hash,
        other_inputs_hash=check.inputs.other_inputs_hash,
        version_inputs_hash=check.inputs.version_inputs_hash,
        lock_version=version,
        locked_at=locked_at,
    )


def _bump_version(
    stack: StackSpec, layer: LayerSpec, check: LayerCheck, options: _Options
) -> tuple[LockResult, LayerLock]:
    """A versioned layer whose launch module changed: same lock, next lock_version."""
    assert check.meta is not None and check.inputs is not None and check.lock_text is not None
    meta = LockMeta(
        **{
            **check.meta.to_json(),
            "version_inputs_hash": check.inputs.version_inputs_hash,
            "lock_version": check.meta.lock_version + 1,
        }
    )
    write_meta(lock_files(stack, layer).meta_path, meta)
    options.report(f"{layer.build_name}: launch module changed, lock_version {meta.lock_version}")
    result = LockResult(
        layer.build_name, changed=True, lock_version=meta.lock_version, skipped=False
    )
    return result, layer_lock(stack, layer, check.lock_text, meta)


def _skipped(stack: StackSpec, layer: LayerSpec, check: LayerCheck) -> LockResult:
    version = check.meta.lock_version if check.meta else 1
    return LockResult(
        layer.build_name, changed=False, lock_version=version, skipped=True,
        reason=check.status.reason, lock_path=lock_files(stack, layer).lock_path,
    )  # fmt: skip


def _lower_lock(
    stack: StackSpec, checker: StatusChecker, locks: dict[str, LayerLock], build_name: str
) -> LayerLock:
    if build_name not in locks:
        layer = stack.layer(build_name)
        check = checker.check(layer)
        if not check.status.valid or check.meta is None or check.lock_text is None:
            raise LockError(f"{build_name}: no valid lock to build on ({check.status.reason})")
        locks[build_name] = layer_lock(stack, layer, check.lock_text, check.meta)
    return locks[build_name]


def _previous_packages(check: LayerCheck) -> tuple[LockedPackage, ...]:
    if check.lock_text is None:
        return ()
    try:
        return parse(check.lock_text, Path("previous lock")).packages
    except LockError:
        return ()


def _relock_set(stack: StackSpec, include: Sequence[str]) -> set[str]:
    """Layers to relock: every layer, or those ``include`` matches and the layers above."""
    if not include:
        return {layer.build_name for layer in stack.layers()}
    matched = [layer for layer in stack.layers() if _matches(layer, include)]
    names = {layer.build_name for layer in matched}
    for layer in matched:
        names.update(upper.build_name for upper in stack.upper_layers(layer))
    return names


def _matches(layer: LayerSpec, patterns: Sequence[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(layer.name, p) or fnmatch.fnmatchcase(layer.build_name, p)
        for p in patterns
    )
