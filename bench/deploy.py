"""Deploy speed: ``venvlayers deploy`` against plain ``tar -xf`` of the same archives.

Usage::

    .venv/bin/python bench/deploy.py [SOURCE] [--repeat N] [--no-compile]

SOURCE is a published output folder (default: ``examples/sklearn-demo/_artifacts`` when it
exists). Each round deploys every app of SOURCE into a fresh temporary folder and, beside it,
unpacks the same archives with the system's ``tar`` (``tar --zstd -xf``, ``-xJf``, ``-xzf``;
``unzip`` for zip): the floor, since it neither checks anything nor runs post-install work.
The best round of each is printed with the deploy split into its steps (from the progress
messages): check (choosing each layer's source and opening it; a delta archive is checked
whole, a full one while it unpacks), unpack (with its checks), post-install
(``postinstall.py``, byte-compiling included unless ``--no-compile``), and the ratio.
A redeploy of the same source (nothing to unpack) is timed too.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from venvlayers._proc import run
from venvlayers.contract import read_stack_metadata
from venvlayers.deploy import deploy

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sklearn-demo" / "_artifacts"
MB = 1_000_000
# Progress message endings that start a step; the step lasts until the next message.
_STEPS = {"checking": "check", "unpacking": "unpack", "running": "post-install"}
_FLOOR_FLAGS = {".tar.zst": ["--zstd", "-xf"], ".tar.xz": ["-xJf"], ".tar.gz": ["-xzf"]}


@dataclass(frozen=True)
class DeployTiming:
    total: float
    steps: dict[str, float]


def timed_deploy(source: Path, target: Path, *, compile_bytecode: bool) -> DeployTiming:
    marks: list[tuple[float, str]] = []

    def report(message: str) -> None:
        if message.startswith("byte-compiling"):
            marks.append((time.perf_counter(), "compile tail"))
            return
        word = message.partition(": ")[2].split(" ", 1)[0]
        marks.append((time.perf_counter(), _STEPS.get(word, "other")))

    started = time.perf_counter()
    deploy(source, target, report=report, compile_bytecode=compile_bytecode)
    ended = time.perf_counter()
    steps: dict[str, float] = defaultdict(float)
    for (at, step), (until, _next) in zip(marks, [*marks[1:], (ended, "")], strict=True):
        steps[step] += until - at
    return DeployTiming(ended - started, dict(steps))


def floor_unpack(archives: list[Path], dest: Path) -> float:
    started = time.perf_counter()
    for archive in archives:
        if archive.name.endswith(".zip"):
            run(["unzip", "-q", archive, "-d", dest], what="unzip")
            continue
        flags = next(f for suffix, f in _FLOOR_FLAGS.items() if archive.name.endswith(suffix))
        run(["tar", *flags, archive, "-C", dest], what="tar")
    return time.perf_counter() - started


def folder_bytes(folder: Path) -> int:
    return sum(
        entry.stat(follow_symlinks=False).st_size
        for entry in folder.rglob("*")
        if entry.is_file() and not entry.is_symlink()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, help="published output folder")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is shown")
    parser.add_argument("--no-compile", action="store_true", help="skip byte-compiling")
    args = parser.parse_args(argv)
    source = args.source or EXAMPLE
    if not source.exists():
        print(f"no published stack at {source}: publish one, or pass its folder", file=sys.stderr)
        return 2
    root, layers = read_stack_metadata(source)
    archives = [root / layer.archive.archive_name for layer in layers if layer.archive]
    for archive in archives:  # warm the page cache: every method reads from memory
        archive.read_bytes()

    best: DeployTiming | None = None
    floor = redeploy = float("inf")
    unpacked = 0
    for _round in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
            target = Path(tmp) / "deploy"
            timing = timed_deploy(source, target, compile_bytecode=not args.no_compile)
            if best is None or timing.total < best.total:
                best = timing
            started = time.perf_counter()
            deploy(source, target, compile_bytecode=not args.no_compile)
            redeploy = min(redeploy, time.perf_counter() - started)
            shutil.rmtree(target)
            dest = Path(tmp) / "floor"
            dest.mkdir()
            floor = min(floor, floor_unpack(archives, dest))
            unpacked = folder_bytes(dest)
    assert best is not None
    packed = sum(archive.stat().st_size for archive in archives)
    print(f"source: {source}")
    print(
        f"archives: {len(archives)}, {packed / MB:.1f} MB packed, {unpacked / MB:.1f} MB unpacked"
    )
    print(f"best of {args.repeat} rounds{' (no byte-compiling)' if args.no_compile else ''}:")
    print(f"  {'venvlayers deploy':<26}{best.total:8.2f} s")
    # Steps overlap (archives unpack side by side, layers compile in the background): each
    # figure is the time until the next progress message; "compile tail" is the wait for
    # compiling to finish after the last layer is in place.
    for step in ("check", "unpack", "post-install", "compile tail", "other"):
        if step in best.steps:
            print(f"    {step:<24}{best.steps[step]:8.2f} s")
    print(f"  {'tar -xf (floor)':<26}{floor:8.2f} s")
    print(f"  {'ratio deploy / floor':<26}{best.total / floor:8.2f} x")
    check_unpack = best.steps.get("check", 0.0) + best.steps.get("unpack", 0.0)
    print(f"  {'ratio check+unpack / floor':<26}{check_unpack / floor:8.2f} x")
    print(f"  {'redeploy (no-op)':<26}{redeploy:8.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
