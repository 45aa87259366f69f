"""`publish --bytecode`: each layer's bytecode made once, at publish, and shipped in its archive.

Deploy otherwise byte-compiles every layer on every target, the largest single cost of
deploying a big framework. Shipped bytecode must not make archives depend on when or where
they were built, so it is made in PEP 552's ``unchecked-hash`` mode: a ``.pyc`` names the
hash of its source instead of the source's time and size, and CPython loads it without
checking it. The file names inside (``co_filename``) are the layer-relative paths, which
importlib replaces with the real path when it loads the module. ``PYTHONHASHSEED=0`` (the
compiling script restarts itself with it) fixes the order of sets in constants. The layer's
own interpreter compiles, so the bytecode has the magic number and cache tag of the Python
that will load it.

The build folder is never written to: the bytecode goes to a temporary folder, and its
files are added to the layer's members where the archive order puts them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from venvlayers._proc import run
from venvlayers.contract.layer_files import BYTECODE_SKIP, EntryKind, LayerEntry
from venvlayers.contract.layer_metadata import read_layer_metadata, resolve_inside
from venvlayers.errors import DeployError, MetadataError, PublishError, ToolError

# Run by the layer's interpreter (any CPython 3.9+), with the layer-relative paths of the
# sources on stdin, NUL-separated. A source that does not compile (packages ship broken
# files as test data) gets no bytecode, as with compileall on the target.
_COMPILER = r"""
import importlib.util, os, py_compile, sys
from concurrent.futures import ProcessPoolExecutor


def compile_one(job):
    layer, out, relative = job
    try:
        py_compile.compile(
            os.path.join(layer, relative),
            cfile=os.path.join(out, importlib.util.cache_from_source(relative)),
            dfile=relative,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeError):
        pass


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Again, with the order of sets fixed and nothing from the caller's PYTHON* settings.
        import subprocess

        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONHASHSEED"] = "0"
        again = [sys.executable, "-s", *sys.argv]
        sys.exit(subprocess.run(again, env=env, input=sys.stdin.buffer.read()).returncode)
    layer, out = sys.argv[1], sys.argv[2]
    paths = [p for p in sys.stdin.buffer.read().decode("utf-8").split("\0") if p]
    jobs = [(layer, out, p) for p in paths]
    with ProcessPoolExecutor() as pool:
        for _done in pool.map(compile_one, jobs, chunksize=16):
            pass
"""

_SKIP = re.compile(BYTECODE_SKIP)


def sources_to_compile(entries: Sequence[LayerEntry], compile_dir: str) -> list[str]:
    """The layer-relative ``.py`` files deploy would compile: under ``compile_dir``, not in a
    test suite or another folder left to compile on first use."""
    prefix = compile_dir.rstrip("/") + "/"
    return [
        entry.path
        for entry in entries
        if entry.kind is EntryKind.FILE
        and entry.path.endswith(".py")
        and entry.path.startswith(prefix)
        and not _SKIP.search("/" + entry.path)
    ]


def compile_layer(
    layer_dir: Path, root: Path, entries: Sequence[LayerEntry], out: Path
) -> list[LayerEntry]:
    """Compile the layer's sources into ``out``; the ``__pycache__`` folders and ``.pyc``
    files made, as members of the layer. ``root`` holds the layers beside it (its runtime)."""
    name = layer_dir.name
    try:
        meta = read_layer_metadata(layer_dir, name)
        python = resolve_inside(layer_dir, meta.base_python, root, what=f"{name}: base_python")
    except (MetadataError, DeployError) as exc:
        raise PublishError(f"cannot compile bytecode to publish: {exc}") from exc
    sources = sources_to_compile(entries, meta.compile_dir)
    if not sources:
        return []
    out.mkdir(parents=True, exist_ok=True)
    script = out / "compile_layer.py"
    script.write_text(_COMPILER, encoding="utf-8")
    try:
        run(
            [python, "-s", script, layer_dir, out],
            what=f"{name}: compile bytecode to publish",
            input="\0".join(sources),
        )
    except ToolError as exc:
        raise PublishError(str(exc)) from exc
    script.unlink()
    return list(_members(out))


def _members(out: Path) -> Iterator[LayerEntry]:
    for folder, _dirs, files in os.walk(out):
        relative_folder = os.path.relpath(folder, out).replace(os.sep, "/")
        if os.path.basename(folder) == "__pycache__":
            yield LayerEntry(relative_folder, EntryKind.DIRECTORY, Path(folder))
        for file in files:
            if file.endswith(".pyc"):
                path = Path(folder, file)
                yield LayerEntry(
                    f"{relative_folder}/{file}", EntryKind.FILE, path, path.stat().st_size
                )


def with_bytecode(
    entries: Sequence[LayerEntry], bytecode: Sequence[LayerEntry]
) -> list[LayerEntry]:
    """The layer's members with its bytecode, in archive order (depth first, names sorted
    by code point in each folder: the order of the paths' component tuples)."""
    return sorted([*entries, *bytecode], key=lambda entry: entry.path.split("/"))
