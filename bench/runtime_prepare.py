"""Time a cold and a cached preparation of the local CPython 3.11 runtime, side by side.

    .venv/bin/python bench/runtime_prepare.py [--version 3.11] [--rounds 3]

Cold: an empty temporary cache, so the local interpreter is copied, stripped, patched and
checked. Cached: the same call again, which only finds the prepared entry. Also shown: the
time to copy the prepared runtime into a layer folder, which every build still pays.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from venvlayers.runtime import copy_runtime, prepare_runtime
from venvlayers.runtime.relocate_copy import tree_size
from venvlayers.spec.model import PythonImplementation


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="3.11")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    impl = PythonImplementation("cpython", args.version)

    cold: list[float] = []
    cached: list[float] = []
    copies: list[float] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="venvlayers-bench-") as scratch:
            cache = Path(scratch) / "cache"
            cold.append(timed(partial(prepare_runtime, impl, source="local", cache_dir=cache)))
            cached.append(timed(partial(prepare_runtime, impl, source="local", cache_dir=cache)))
            prepared = prepare_runtime(impl, source="local", cache_dir=cache)
            copies.append(timed(partial(copy_runtime, prepared, Path(scratch) / "layer")))
            size = tree_size(prepared.root)

    cold_s, cached_s, copy_s = (statistics.median(v) for v in (cold, cached, copies))
    print(f"local runtime {impl} -> {prepared.version} from {prepared.origin}")
    print(f"median of {args.rounds} rounds; prepared runtime size {size / 1e6:.1f} MB")
    print()
    print(f"{'':24}{'cold':>10}{'cached':>10}{'ratio':>10}")
    print(f"{'prepare_runtime (s)':24}{cold_s:>10.3f}{cached_s:>10.4f}{cold_s / cached_s:>9.0f}x")
    print(f"{'copy into a layer (s)':24}{copy_s:>10.3f}")


if __name__ == "__main__":
    main()
