"""Time `venvlayers build` of the example stack next to its floor, and the no-op rebuild.

The floor is `uv pip install` of the same locked packages into one plain venv: what any
tool must pay to put those files on disk. Both use the same (warm) uv cache and the same
prepared runtime (the runtime cache is warmed first, so neither side pays for relocation).

Run: .venv/bin/python bench/build.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvlayers.lock import read_layer_lock
from venvlayers.runtime import prepare_runtime
from venvlayers.spec import load_stack

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sklearn-demo"


def venvlayers(*args: str | Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "venvlayers", "-q", *map(str, args)],
        check=True,
        env={
            **os.environ,
            "VENVLAYERS_RUNTIME_SOURCE": os.environ.get("VENVLAYERS_RUNTIME_SOURCE", "local"),
        },
        stdout=subprocess.DEVNULL,
    )


def timed(func: object, *args: object) -> float:
    start = time.perf_counter()
    func(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def floor_install(stack_dir: Path, work: Path) -> float:
    """One venv with every locked package of every layer, installed by uv in one call."""
    from uv import find_uv_bin

    stack = load_stack(stack_dir)
    runtime = stack.runtimes[0]
    prepared = prepare_runtime(runtime.python_implementation, source="local")
    pins: dict[str, str] = {}
    for layer in stack.layers():
        for package in read_layer_lock(stack, layer).packages:
            if package.provided_by is None:
                pins[package.name] = package.version
    requirements = work / "floor-requirements.txt"
    requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    venv = work / "floor-venv"
    shutil.rmtree(venv, ignore_errors=True)
    uv = os.fspath(find_uv_bin())
    env = {**os.environ, "UV_NO_CONFIG": "1"}
    start = time.perf_counter()
    subprocess.run(
        [uv, "venv", "-q", "--python", prepared.root / prepared.python, venv], check=True, env=env
    )
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            venv / "bin/python",
            "--no-deps",
            "-r",
            requirements,
        ],
        check=True,
        env=env,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    builds, noops, floors = [], [], []
    with tempfile.TemporaryDirectory(prefix="venvlayers-bench-build-") as tmp:
        work = Path(tmp)
        stack_dir = work / "stack"
        shutil.copytree(
            EXAMPLE,
            stack_dir,
            ignore=shutil.ignore_patterns("_build", "_artifacts", "_export", "_deploy"),
        )
        venvlayers("build", stack_dir)  # warm the uv and runtime caches
        for _ in range(args.repeat):
            shutil.rmtree(stack_dir / "_build")
            builds.append(timed(venvlayers, "build", stack_dir))
            noops.append(timed(venvlayers, "build", stack_dir))
            floors.append(floor_install(stack_dir, work))
    build, noop, floor = (statistics.median(x) for x in (builds, noops, floors))
    print(f"example stack: {EXAMPLE} (median of {args.repeat}; warm uv and runtime caches)")
    print(f"{'step':<44}{'seconds':>10}")
    print(f"{'venvlayers build (cold build folder)':<44}{build:>10.2f}")
    print(f"{'uv pip install, same packages, one venv':<44}{floor:>10.2f}")
    print(f"{'venvlayers build (no-op rebuild)':<44}{noop:>10.2f}")
    print(
        f"cold build / floor: {build / floor:.2f}x; no-op rebuild target < 1 s: {'met' if noop < 1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
