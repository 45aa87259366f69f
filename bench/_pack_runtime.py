"""Pack venvlayers' relocatable local runtime as a python-build-standalone ``install_only`` archive.

Usage (with a Python that can import venvlayers)::

    python _pack_runtime.py --request cpython@3.11 --cache-dir DIR --output-dir DIR

Prints one JSON object: ``archive`` (path), ``version`` (X.Y.Z), ``origin`` (the interpreter
copied). venvstacks gets this archive instead of a download, so both tools run the very same
interpreter. ``install_only`` archives hold one top folder, ``python/``, which pbs-installer
strips when it unpacks them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
from pathlib import Path

from venvlayers.runtime import PreparedRuntime, prepare_runtime
from venvlayers.spec.model import PythonImplementation

TOP_FOLDER = "python"


def _request(text: str) -> PythonImplementation:
    implementation, _, version = text.partition("@")
    if not implementation or not version:
        sys.exit(f"--request {text!r}: expected IMPLEMENTATION@VERSION, e.g. cpython@3.11")
    return PythonImplementation(implementation=implementation, version=version)


def _regular_file_entry(tar: tarfile.TarFile, path: Path, arcname: str) -> tarfile.TarInfo:
    info = tar.gettarinfo(str(path), arcname)
    if info.islnk():
        # pbs-installer strips the top folder from member names but not from hard link
        # targets, so a hard link entry would point nowhere once unpacked: store a copy.
        info.type = tarfile.REGTYPE
        info.linkname = ""
        info.size = path.stat().st_size
    return info


def pack(root: Path, archive: Path) -> None:
    """Write ``root`` into ``archive`` (gzip tar) under the top folder ``python/``."""
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
        tar.add(str(root), TOP_FOLDER, recursive=False)
        for folder, dirnames, filenames in os.walk(root):
            dirnames.sort()
            here = Path(folder)
            for name in [*dirnames, *sorted(filenames)]:
                path = here / name
                arcname = f"{TOP_FOLDER}/{path.relative_to(root).as_posix()}"
                info = _regular_file_entry(tar, path, arcname)
                if info.isreg():
                    with path.open("rb") as content:
                        tar.addfile(info, content)
                else:
                    tar.addfile(info)
    partial.replace(archive)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--request", required=True, help="e.g. cpython@3.11")
    parser.add_argument("--cache-dir", type=Path, required=True, help="venvlayers cache folder")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the archive goes")
    args = parser.parse_args(argv)

    prepared: PreparedRuntime = prepare_runtime(
        _request(args.request),
        source="local",
        cache_dir=args.cache_dir,
        report=lambda message: print(message, file=sys.stderr),
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    archive = args.output_dir / (
        f"{prepared.implementation}-{prepared.version}-local-install_only.tar.gz"
    )
    if not archive.is_file():
        pack(prepared.root, archive)
    print(
        json.dumps(
            {"archive": str(archive), "version": prepared.version, "origin": prepared.origin}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
