"""Locking: one cross-platform PEP 751 lock per layer, resolved by uv.

Files (committed beside the spec, in ``requirements/<build name>/``):
``pylock.<build name>.toml``, ``pylock.<build name>.meta.json`` and
``packages-<build name>.txt``. See docs/locking.md.
"""

from venvlayers.lock.model import LayerLock, LockedPackage, LockedWheel, LockResult, LockStatus
from venvlayers.lock.platforms import WheelTarget, marker_environment, platform_of
from venvlayers.lock.stack import lock_stack
from venvlayers.lock.status import lock_status, read_layer_lock

__all__ = [
    "LayerLock",
    "LockResult",
    "LockStatus",
    "LockedPackage",
    "LockedWheel",
    "WheelTarget",
    "lock_stack",
    "lock_status",
    "marker_environment",
    "platform_of",
    "read_layer_lock",
]
