"""Build: venvs (and relocatable runtimes) from the layers' locks, into the build folder.

The public face is what the CLI and the pipeline call; every other module here is private.
Names are imported on first use, so importing a submodule does not load the whole stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venvlayers._lazy import lazy_attributes

if TYPE_CHECKING:
    from venvlayers.build.build_record import BuildRecord
    from venvlayers.build.stage import BuildOptions, BuildResult, build_stack, default_build_dir

_HOMES = {
    "BuildOptions": "stage",
    "BuildRecord": "record",
    "BuildResult": "stage",
    "build_stack": "stage",
    "default_build_dir": "stage",
}

__all__ = ["BuildOptions", "BuildRecord", "BuildResult", "build_stack", "default_build_dir"]


__getattr__ = lazy_attributes(__name__, _HOMES)
