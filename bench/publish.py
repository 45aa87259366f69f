"""Publishing speed and size: venvlayers' archive writers against two reference methods.

Usage::

    .venv/bin/python bench/publish.py [LAYER_DIR ...] [--levels 11,12] [--jobs N] [--no-xz]

Layers: the given folders, else a copy of the built example stack
(``examples/sklearn-demo/_build/*``) when it exists, else a synthetic stack of about 300 MB
copied from this machine's Python (built once, kept under the system temporary folder);
``--synthetic`` picks the latter even when the example is built. For each method, every layer is
archived and the wall time and total bytes are printed side by side:

- ``venvlayers``: ``write_layer_archives`` (all layers on a thread pool, tar.zst);
- ``floor``: ``tar -cf - DIR | zstd -T0 --long=W -LEVEL`` for each layer in turn, with the same
  level and window as ours: the same work done by two C programs, the speed to approach;
- ``tarfile w:xz``: ``tarfile.open(mode="w:xz")`` for each layer, the common stdlib method.

Targets: venvlayers within 1.3x of the floor's time, at least 10x faster than w:xz, and at
most 1.2x its bytes. The page cache is warmed first so every method reads from memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from venvlayers._proc import run
from venvlayers.publish.archive import ArchiveRequest, write_layer_archives
from venvlayers.publish.formats.tar_zst import DEFAULT_LEVEL, DEFAULT_WINDOW_LOG, TarZst

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_BUILD = REPO / "examples" / "sklearn-demo" / "_build"
SYNTHETIC = Path(tempfile.gettempdir()) / "venvlayers-bench-publish"
SNAPSHOT = Path(tempfile.gettempdir()) / "venvlayers-bench-publish-example"
MTIME = 1_700_000_000
MB = 1_000_000
# Packages that make a framework layer realistic (large compiled extensions and bundled
# shared libraries), taken first when the base Python has them.
_SCIENTIFIC = ("numpy", "numpy.libs", "scipy", "scipy.libs", "pandas", "scikit_learn.libs")
_SKIP = ("__pycache__", "*.pyc", "test", "tests", "idlelib", "config-*")


@dataclass(frozen=True)
class Measure:
    label: str
    seconds: float
    cpu_seconds: float  # user + system, this process and its children
    size: int


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.layers:
        layers = [Path(p).resolve() for p in args.layers]
    else:
        layers = _synthetic_layers() if args.synthetic else _default_layers()
    content = sum(_content_size(layer) for layer in layers)
    print(f"layers: {', '.join(layer.name for layer in layers)}  ({content / MB:.0f} MB of files)")
    print(f"cpus: {_cpus()}  window_log: {args.window_log}  jobs: {args.jobs or 'default'}")
    _warm(layers)
    with tempfile.TemporaryDirectory(prefix="venvlayers-bench-out-") as scratch:
        out = Path(scratch)
        rows: list[tuple[int, Measure, Measure]] = []
        for level in args.levels:
            # Interleaved rounds, best of each: a shared machine's noise only ever adds time.
            ours_runs, floor_runs = [], []
            for _ in range(args.rounds):
                ours_runs.append(
                    _timed(f"venvlayers L{level}", partial(_ours, layers, out, level, args))
                )
                floor_runs.append(
                    _timed(f"floor L{level}", partial(_floor, layers, out, level, args.window_log))
                )
            rows.append((level, _best(ours_runs), _best(floor_runs)))
        xz = _timed("tarfile w:xz", partial(_stdlib_xz, layers, out)) if args.xz else None
    _report(rows, xz)
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layers", nargs="*", help="layer folders (default: see module doc)")
    parser.add_argument(
        "--levels",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[DEFAULT_LEVEL],
        help=f"zstd levels to compare (default: {DEFAULT_LEVEL}, venvlayers' default)",
    )
    parser.add_argument("--window-log", type=int, default=DEFAULT_WINDOW_LOG)
    parser.add_argument("--jobs", type=int, default=None, help="archives written at once")
    parser.add_argument("--rounds", type=int, default=3, help="runs per method (best is kept)")
    parser.add_argument("--no-xz", dest="xz", action="store_false", help="skip tarfile w:xz")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic layers")
    return parser.parse_args(argv)


def _default_layers() -> list[Path]:
    if EXAMPLE_BUILD.is_dir():
        built = sorted(p for p in EXAMPLE_BUILD.iterdir() if p.is_dir() and _is_layer(p))
        if built:
            return _snapshot(built)
    return _synthetic_layers()


def _snapshot(layers: Sequence[Path]) -> list[Path]:
    """A private copy of the example build, so a rebuild during the run cannot disturb it."""
    shutil.rmtree(SNAPSHOT, ignore_errors=True)
    copies = []
    for layer in layers:
        copy = SNAPSHOT / layer.name
        shutil.copytree(layer, copy, symlinks=True)
        copies.append(copy)
    return copies


def _is_layer(folder: Path) -> bool:
    return not folder.name.startswith(".") and (folder / "share" / "venv").is_dir()


def _synthetic_layers() -> list[Path]:
    """A runtime, a framework and an application layer copied from this machine's Python."""
    names = ("cpython@bench", "framework-bench", "app-bench")
    layers = [SYNTHETIC / name for name in names]
    if all(layer.is_dir() for layer in layers):
        return layers
    print(f"building synthetic layers in {SYNTHETIC} (once) ...", flush=True)
    shutil.rmtree(SYNTHETIC, ignore_errors=True)
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix})["stdlib"])
    base_site = Path(sysconfig.get_paths(vars={"base": sys.base_prefix})["purelib"])
    venv_site = Path(sysconfig.get_paths()["purelib"])
    relative_lib = stdlib.relative_to(sys.base_prefix).as_posix()
    _runtime_layer(layers[0], Path(sys.base_prefix), relative_lib)
    _venv_layer(layers[1], base_site, relative_lib, _pick(base_site, 250 * MB, _SCIENTIFIC))
    _venv_layer(layers[2], venv_site, relative_lib, _pick(venv_site, 40 * MB, ()))
    return layers


def _runtime_layer(dest: Path, prefix: Path, relative_lib: str) -> None:
    ignore = shutil.ignore_patterns(*_SKIP, "site-packages")
    for part in ("bin", "include", "lib", "share"):
        if (prefix / part).is_dir():
            shutil.copytree(prefix / part, dest / part, symlinks=True, ignore=ignore)
    (dest / relative_lib / "site-packages").mkdir(parents=True, exist_ok=True)
    (dest / "share" / "venv" / "metadata").mkdir(parents=True, exist_ok=True)


def _venv_layer(dest: Path, site: Path, relative_lib: str, names: list[str]) -> None:
    target = dest / relative_lib / "site-packages"
    target.mkdir(parents=True)
    for name in names:
        source = site / name
        if source.is_dir():
            ignore = shutil.ignore_patterns(*_SKIP)
            shutil.copytree(source, target / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    (dest / "bin").mkdir()
    (dest / "bin" / "python").symlink_to(Path(sys.executable).resolve())  # left out by us
    (dest / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\n")
    (dest / "share" / "venv" / "metadata").mkdir(parents=True)


def _pick(site: Path, budget: int, preferred: Sequence[str]) -> list[str]:
    """Top-level items of ``site``: the preferred ones first, then the largest, within budget."""
    sizes = {
        item.name: _content_size(item)
        for item in site.iterdir()
        if item.name != "__pycache__" and not item.name.endswith(".pth")
    }
    order = [n for n in preferred if n in sizes]
    order += sorted((n for n in sizes if n not in order), key=lambda n: (-sizes[n], n))
    chosen, used = [], 0
    for name in order:
        if used + sizes[name] <= budget:
            chosen.append(name)
            used += sizes[name]
    return chosen


def _content_size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _warm(layers: Sequence[Path]) -> None:
    for layer in layers:
        for path in layer.rglob("*"):
            if path.is_file() and not path.is_symlink():
                with path.open("rb") as stream:
                    while stream.read(1 << 20):
                        pass


def _timed(label: str, action: Callable[[], int]) -> Measure:
    print(f"  {label} ...", end="", flush=True)
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    size = action()
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    print(f" {seconds:.2f} s (cpu {cpu:.2f} s), {size / MB:.2f} MB", flush=True)
    return Measure(label, seconds, cpu, size)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _best(runs: Sequence[Measure]) -> Measure:
    return min(runs, key=lambda measure: measure.seconds)


def _ours(layers: Sequence[Path], out: Path, level: int, args: argparse.Namespace) -> int:
    fmt = TarZst(level=level, window_log=args.window_log)
    requests = [
        ArchiveRequest(layer, out / f"{layer.name}.ours.tar.zst", layer.name, MTIME, fmt)
        for layer in layers
    ]
    results = write_layer_archives(requests, jobs=args.jobs)
    return sum(result.size for result in results)


def _floor(layers: Sequence[Path], out: Path, level: int, window_log: int) -> int:
    total = 0
    for layer in layers:
        dest = out / f"{layer.name}.floor.tar.zst"
        tar = ["tar", "-cf", "-", "-C", str(layer.parent), layer.name]
        zstd = ["zstd", "-q", "-f", "-T0", f"--long={window_log}", f"-{level}", "-o", str(dest)]
        pipeline = f"{shlex.join(tar)} | {shlex.join(zstd)}"
        run(["bash", "-o", "pipefail", "-c", pipeline], what=f"{layer.name}: tar | zstd")
        total += dest.stat().st_size
    return total


def _stdlib_xz(layers: Sequence[Path], out: Path) -> int:
    total = 0
    for layer in layers:
        dest = out / f"{layer.name}.tar.xz"
        with tarfile.open(dest, "w:xz") as archive:
            archive.add(layer, arcname=layer.name)
        total += dest.stat().st_size
    return total


def _report(rows: Sequence[tuple[int, Measure, Measure]], xz: Measure | None) -> None:
    print()
    header = f"{'level':>5} {'ours s':>8} {'floor s':>8} {'ours cpu':>9} {'floor cpu':>9}"
    header += f" {'ours MB':>9} {'floor MB':>9} {'ours/floor t':>12}"
    if xz:
        header += f" {'xz/ours t':>10} {'ours/xz B':>10}"
    print(header)
    for level, ours, floor in rows:
        line = f"{level:>5} {ours.seconds:>8.2f} {floor.seconds:>8.2f}"
        line += f" {ours.cpu_seconds:>9.2f} {floor.cpu_seconds:>9.2f}"
        line += f" {ours.size / MB:>9.2f} {floor.size / MB:>9.2f}"
        line += f" {ours.seconds / floor.seconds:>12.2f}"
        if xz:
            line += f" {xz.seconds / ours.seconds:>10.1f} {ours.size / xz.size:>10.3f}"
        print(line)
    if xz:
        print(
            f"tarfile w:xz: {xz.seconds:.2f} s (cpu {xz.cpu_seconds:.2f} s), {xz.size / MB:.2f} MB"
        )
    print("targets: ours/floor t <= 1.3, xz/ours t >= 10, ours/xz B <= 1.2")


def _cpus() -> int:
    return os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
