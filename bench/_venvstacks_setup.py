"""venvstacks 0.8 ready to run on this host: what the comparison benchmark and the
compatibility tests (tests/e2e/test_venvstacks_compat.py) both need.

- :func:`pack_local_runtime`: venvlayers' relocatable copy of the local CPython, packed as a
  python-build-standalone ``install_only`` archive (``_pack_runtime.py``);
- :func:`venvstacks_command`: the venvstacks CLI run through ``_venvstacks_wrapper.py``, which
  serves its runtime download from that archive (GitHub is not reachable from here).

venvstacks itself is installed by ``_bench_tools.venvstacks_tool`` with the pinned versions.
"""

from __future__ import annotations

import json
from pathlib import Path

from _bench_proc import run_captured

BENCH = Path(__file__).resolve().parent


def pack_local_runtime(
    venvlayers_python: Path | str, request: str, *, cache_dir: Path, output_dir: Path, log: Path
) -> tuple[Path, str]:
    """The packed runtime for ``request`` (``cpython@3.11``) and its exact version."""
    _, packed = run_captured(
        [venvlayers_python, BENCH / "_pack_runtime.py", "--request", request,
         "--cache-dir", cache_dir, "--output-dir", output_dir],
        log=log,
        what="pack the local runtime",
    )  # fmt: skip
    runtime = json.loads(packed.strip().splitlines()[-1])
    return Path(runtime["archive"]), str(runtime["version"])


def venvstacks_command(
    venvstacks_python: Path, runtime_archive: Path, *args: str | Path
) -> list[str | Path]:
    """``venvstacks ARGS`` with its runtime download served from ``runtime_archive``."""
    return [
        venvstacks_python, BENCH / "_venvstacks_wrapper.py",
        "--runtime-archive", runtime_archive, "--", *args,
    ]  # fmt: skip
