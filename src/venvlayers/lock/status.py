"""Lock validity: compare a layer's inputs with what its metadata recorded. Never runs uv."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from venvlayers._fs import hash_bytes
from venvlayers.errors import LockError
from venvlayers.lock.files import LockMeta, lock_files, read_meta
from venvlayers.lock.inputs import NO_LOCK, LayerInputs, layer_inputs
from venvlayers.lock.model import LayerLock, LockStatus
from venvlayers.lock.pylock import parse
from venvlayers.spec.model import LayerSpec, StackSpec


@dataclass(frozen=True)
class LayerCheck:
    """Everything the validity check learnt about one layer."""

    status: LockStatus
    inputs: LayerInputs | None
    meta: LockMeta | None
    lock_text: str | None
    # The lock still fits its inputs; only a versioned layer's version inputs changed.
    version_only: bool = False


class StatusChecker:
    """Checks layers bottom-up, remembering results (a layer's validity needs its lowers')."""

    def __init__(self, stack: StackSpec) -> None:
        self.stack = stack
        self._checked: dict[str, LayerCheck] = {}

    def forget(self, layer: LayerSpec) -> None:
        """Drop what is known about ``layer`` and the layers above it (after relocking)."""
        self._checked.pop(layer.build_name, None)
        for upper in self.stack.upper_layers(layer):
            self._checked.pop(upper.build_name, None)

    def check(self, layer: LayerSpec) -> LayerCheck:
        if layer.build_name not in self._checked:
            self._checked[layer.build_name] = self._check(layer)
        return self._checked[layer.build_name]

    def _check(self, layer: LayerSpec) -> LayerCheck:
        files = lock_files(self.stack, layer)
        meta = read_meta(files.meta_path)
        lock_text = _read_text(files.lock_path)
        version = meta.lock_version if meta else None
        locked_at = meta.locked_at if meta else None

        def invalid(reason: str, inputs: LayerInputs | None = None) -> LayerCheck:
            return LayerCheck(
                LockStatus(False, reason, version, locked_at), inputs, meta, lock_text
            )

        try:
            inputs = layer_inputs(self.stack, layer, self._lower_hashes(layer))
        except LockError as exc:
            return invalid(str(exc))
        if lock_text is None:
            return invalid("not locked yet", inputs)
        if meta is None:
            return invalid("lock metadata missing or unreadable", inputs)
        if hash_bytes(lock_text.encode("utf-8")) != meta.requirements_hash:
            return invalid("lock file differs from the one recorded in its metadata", inputs)
        for lower in self.stack.lower_layers(layer):
            if not self.check(lower).status.valid:
                return invalid(f"lower layer {lower.build_name} needs locking", inputs)
        if inputs.lock_input_hash != meta.lock_input_hash:
            return invalid("requirements, Python X.Y or lower layers' locks changed", inputs)
        if inputs.other_inputs_hash != meta.other_inputs_hash:
            return invalid("targets, 'versioned' or index settings changed", inputs)
        if layer.versioned and inputs.version_inputs_hash != meta.version_inputs_hash:
            return LayerCheck(
                LockStatus(
                    False, "launch module changed: lock_version bump due", version, locked_at
                ),
                inputs,
                meta,
                lock_text,
                version_only=True,
            )
        return LayerCheck(LockStatus(True, "locked", version, locked_at), inputs, meta, lock_text)

    def _lower_hashes(self, layer: LayerSpec) -> list[tuple[str, str]]:
        hashes = []
        for lower in self.stack.lower_layers(layer):
            text = _read_text(lock_files(self.stack, lower).lock_path)
            hashes.append(
                (
                    lower.build_name,
                    hash_bytes(text.encode("utf-8")) if text is not None else NO_LOCK,
                )
            )
        return hashes


def lock_status(stack: StackSpec, layer: LayerSpec) -> LockStatus:
    """Whether ``layer`` has a valid lock (reads files and hashes inputs; never runs uv)."""
    return StatusChecker(stack).check(layer).status


def read_layer_lock(stack: StackSpec, layer: LayerSpec, *, frozen: bool = False) -> LayerLock:
    """The layer's valid lock; :class:`LockError` when it is missing or out of date.

    ``frozen`` (``build --frozen``): the lock as it is, even when its inputs changed since;
    still an error when it is missing or differs from its own metadata.
    """
    check = StatusChecker(stack).check(layer)
    if frozen and check.meta is not None and check.lock_text is not None:
        if hash_bytes(check.lock_text.encode("utf-8")) == check.meta.requirements_hash:
            return layer_lock(stack, layer, check.lock_text, check.meta)
        raise LockError(
            f"{layer.build_name}: the lock differs from its metadata; --frozen builds only"
            f" from a whole lock, run `venvlayers lock {stack.path}`"
        )
    if frozen:
        raise LockError(
            f"{layer.build_name}: not locked, and --frozen never locks; run"
            f" `venvlayers lock {stack.path}` first ({check.status.reason})"
        )
    if not check.status.valid or check.meta is None or check.lock_text is None:
        raise LockError(
            f"{layer.build_name}: no valid lock; run `venvlayers lock {stack.path}`"
            f" ({check.status.reason})"
        )
    return layer_lock(stack, layer, check.lock_text, check.meta)


def layer_lock(stack: StackSpec, layer: LayerSpec, lock_text: str, meta: LockMeta) -> LayerLock:
    files = lock_files(stack, layer)
    doc = parse(lock_text, files.lock_path)
    return LayerLock(
        build_name=layer.build_name,
        packages=doc.packages,
        lock_version=meta.lock_version,
        locked_at=meta.locked_at,
        requirements_hash=meta.requirements_hash,
        lock_path=files.lock_path,
        meta_path=files.meta_path,
        platforms=doc.platforms,
        python_version=doc.python_version,
        linux_target=doc.linux_target,
        macosx_target=doc.macosx_target,
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
