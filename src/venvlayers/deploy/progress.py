"""What a deploy tells a progress display, beside the one-line ``report`` messages.

The deploy stage never draws anything: it calls these methods, and the caller (the CLI)
decides whether a terminal shows bars. Both may be called from worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class DeployProgress(Protocol):
    def unpacking(self, install_target: str, total: int) -> Callable[[int], None]:
        """A layer's archive starts unpacking; ``total`` is its size in bytes.

        Returns the callback the unpacking calls with each count of archive bytes read.
        """
        ...

    def compiled(self, install_target: str, done: int, total: int) -> None:
        """``done`` of the ``total`` layers being byte-compiled have finished."""
        ...
