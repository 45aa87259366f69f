"""Progress on a terminal: one line per layer with its current step, bars where bytes count.

Every line has a spinner and a clock that rich redraws on its own thread, so no step sits
still on screen while a stage works. Off a terminal, with --json, -q or --no-progress, the
display is a no-op and the stages' notes go to stderr as lines (or nowhere with -q).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from venvlayers import ui

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.progress import Progress, ProgressColumn, Task, TaskID
    from rich.text import Text


class Live:
    """The display of one command; its methods are safe to call from worker threads."""

    def __init__(self, progress: Progress | None, title: str) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._overall = progress.add_task(title, total=None) if progress else None

    @property
    def enabled(self) -> bool:
        return self._progress is not None

    def note(self, message: str) -> None:
        """A stage's ``report`` note: ``layer: what it does now`` updates that layer's line."""
        if self._progress is None:
            return
        name, sep, text = message.partition(": ")
        if sep and name and " " not in name:
            self._progress.update(self._task(name), description=f"{name}: {text}")
        elif self._overall is not None:
            self._progress.update(self._overall, description=message)

    def _task(self, name: str) -> TaskID:
        assert self._progress is not None
        with self._lock:
            if name not in self._tasks:
                self._tasks[name] = self._progress.add_task(name, total=None)
            return self._tasks[name]

    def byte_bar(self, name: str, step: str, total: int, verb: str) -> Callable[[int], None]:
        """A bar of ``total`` bytes on ``name``'s line; returns the callback that advances it."""
        if self._progress is None:
            return lambda _count: None
        progress = self._progress
        task = self._task(name)
        progress.update(
            task, description=f"{name}: {step}", total=total, completed=0, unit="bytes", verb=verb
        )

        done = 0
        lock = threading.Lock()

        def advance(count: int) -> None:
            nonlocal done
            # A zip archive is read twice (hash, then inflate): the bar stops at its total.
            with lock:
                done = min(total, done + count)
                progress.update(task, completed=done)

        return advance

    # The archive writer's ProgressFactory (publish).
    def archiving(self, label: str, total: int) -> Callable[[int], None]:
        return self.byte_bar(label, "archiving", total, "read")

    # deploy.DeployProgress
    def unpacking(self, install_target: str, total: int) -> Callable[[int], None]:
        return self.byte_bar(install_target, "unpacking", total, "unpacked")

    def compiled(self, install_target: str, done: int, total: int) -> None:
        if self._progress is None or self._overall is None:
            return
        self._progress.update(
            self._overall,
            description=f"byte-compiling: {done} of {total} layers done ({install_target})",
        )


@contextlib.contextmanager
def live(title: str) -> Iterator[Live]:
    """A live display for one command on a terminal, or a silent stand-in elsewhere."""
    if not ui.progress_enabled():
        yield Live(None, title)
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        _bar_column()(),
        _amount_column()(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=ui.stderr(), transient=True) as progress:
        display = Live(progress, title)
        ui.set_live_sink(display.note)
        try:
            yield display
        finally:
            ui.set_live_sink(None)


def _bar_column() -> type[ProgressColumn]:
    from rich.progress import BarColumn, ProgressColumn
    from rich.text import Text

    class BarOnlyForAmounts(ProgressColumn):
        """A bar where a total is known; a step without one has its spinner only."""

        def __init__(self) -> None:
            super().__init__()
            self._bar = BarColumn(bar_width=24)

        def render(self, task: Task) -> RenderableType:
            if task.total is None:
                return Text("")
            return self._bar.render(task)

    return BarOnlyForAmounts


def _amount_column() -> type[ProgressColumn]:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class AmountColumn(ProgressColumn):
        """``12.3 MiB of 40.1 MiB unpacked``: the bytes done, in the one size style."""

        def render(self, task: Task) -> Text:
            if task.fields.get("unit") != "bytes" or task.total is None:
                return Text("")
            done, total = int(task.completed), int(task.total)
            return Text(f"{ui.size(done)} of {ui.size(total)} {task.fields['verb']}")

    return AmountColumn
