"""Run the venvstacks CLI with its runtime download served from a local archive.

Usage (with the Python of the venv that has venvstacks installed)::

    python _venvstacks_wrapper.py --runtime-archive RUNTIME.tar.gz -- <venvstacks arguments>

venvstacks installs runtimes by calling ``pbs_installer.download``, which fetches a
python-build-standalone archive from GitHub. This host cannot reach GitHub, so the benchmark
hands venvstacks the same relocatable interpreter venvlayers uses, packed as an
``install_only`` archive. venvstacks imports ``download`` from ``pbs_installer`` when it
installs a runtime, so replacing the module attribute before its CLI starts is enough.
The archive's checksum is not checked on that path (venvstacks relies on ``download`` to do
it), which is why a local archive with a different hash is accepted.

Runs with the venvstacks venv's Python: standard library plus venvstacks only.
"""

from __future__ import annotations

import inspect
import shutil
import sys
from pathlib import Path
from typing import Any

# The parameters of ``pbs_installer.download`` this stand-in mimics (pbs-installer 2025.x).
_DOWNLOAD_PARAMETERS = ("python_file", "destination", "client")


def _local_download(archive: Path) -> Any:
    def download(python_file: tuple[str, str | None], destination: str, client: Any = None) -> str:
        # Same contract as the original: write the archive to ``destination`` and return the
        # file name that tells ``install_file`` how to unpack it (ours is a .tar.gz).
        del python_file, client
        shutil.copyfile(archive, destination)
        return archive.name

    return download


def _install_stand_in(archive: Path) -> None:
    import pbs_installer

    found = tuple(inspect.signature(pbs_installer.download).parameters)
    if found != _DOWNLOAD_PARAMETERS:
        sys.exit(
            f"pbs_installer.download takes {found}, not {_DOWNLOAD_PARAMETERS}:"
            " update bench/_venvstacks_wrapper.py for this pbs-installer version"
        )
    pbs_installer.download = _local_download(archive)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "--runtime-archive" or argv[2] != "--":
        sys.exit("usage: _venvstacks_wrapper.py --runtime-archive ARCHIVE -- VENVSTACKS-ARGS...")
    archive = Path(argv[1]).resolve()
    if not archive.is_file():
        sys.exit(f"{archive}: runtime archive not found")
    _install_stand_in(archive)

    from venvstacks.cli import main as venvstacks_main  # type: ignore[import-not-found]

    sys.argv = ["venvstacks", *argv[3:]]
    result = venvstacks_main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
