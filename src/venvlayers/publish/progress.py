"""A rich progress bar for archive writing: one line per layer, bytes of content done.

Thin on purpose: the archive core only sees a :class:`ProgressFactory` and works without one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from venvlayers.publish.archive import ProgressFactory


@contextlib.contextmanager
def archive_progress(
    *, enabled: bool, console: Console | None = None
) -> Iterator[ProgressFactory | None]:
    """Yield a progress factory for :func:`write_layer_archives`, or None when disabled."""
    if not enabled:
        yield None
        return
    if console is None:
        from venvlayers import ui

        console = ui.stderr()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    # rich's Progress takes a lock around updates, so archive threads may advance it directly.
    with Progress(*columns, console=console) as bar:

        def factory(label: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(label, total=total)
            return lambda count: bar.advance(task, count)

        yield factory
