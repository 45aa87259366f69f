"""Time `lock` on the example stack: cold (no locks yet) and `--if-needed` on the locked stack.

Run: .venv/bin/python bench/lock.py [--repeat N]
The uv cache is used as it is (warm after the first run); "cold" means no existing locks.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import venvlayers.lock.layer_resolve as layer_resolve
from venvlayers.lock import lock_stack
from venvlayers.spec import load_stack

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sklearn-demo"


class ResolverCounter:
    """Counts uv resolutions by wrapping the one function that starts them."""

    def __init__(self) -> None:
        self.calls = 0
        self._original: Callable[..., Any] = layer_resolve.resolve

    def __enter__(self) -> ResolverCounter:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return self._original(*args, **kwargs)

        layer_resolve.resolve = counted  # type: ignore[assignment]
        return self

    def __exit__(self, *_exc: object) -> None:
        layer_resolve.resolve = self._original  # type: ignore[assignment]


def timed(stack_dir: Path, **options: Any) -> tuple[float, int]:
    stack = load_stack(stack_dir)
    with ResolverCounter() as counter:
        start = time.perf_counter()
        lock_stack(stack, **options)
        elapsed = time.perf_counter() - start
    return elapsed, counter.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, int]]] = {"lock (cold)": [], "lock --if-needed": [],
                                                "lock (relock, unchanged)": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="venvlayers-bench-") as tmp:
        for round_ in range(args.repeat):
            stack_dir = Path(tmp) / f"sklearn-demo-{round_}"
            shutil.copytree(
                EXAMPLE,
                stack_dir,
                ignore=shutil.ignore_patterns(
                    "requirements", "_build", "_artifacts", "_export", "_deploy", "__pycache__"
                ),
            )
            rows["lock (cold)"].append(timed(stack_dir))
            rows["lock --if-needed"].append(timed(stack_dir, if_needed=True))
            rows["lock (relock, unchanged)"].append(timed(stack_dir))
    print(f"example stack: {EXAMPLE.name} ({args.repeat} rounds, median)")
    print(f"{'command':<28}{'seconds':>10}{'uv resolutions':>16}")
    for name, samples in rows.items():
        seconds = statistics.median(s for s, _ in samples)
        calls = max(c for _, c in samples)
        print(f"{name:<28}{seconds:>10.3f}{calls:>16}")
    cold = statistics.median(s for s, _ in rows["lock (cold)"])
    needed = statistics.median(s for s, _ in rows["lock --if-needed"])
    print(f"--if-needed is {cold / needed:,.0f}x faster than a cold lock (target: < 1 s)")


if __name__ == "__main__":
    main()
