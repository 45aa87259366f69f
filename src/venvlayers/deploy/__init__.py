"""Deploy published layers into a folder, run, verify, remove and garbage-collect them.

Names are imported on first use, so `venvlayers run` loads only what running needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from venvlayers._lazy import lazy_attributes

if TYPE_CHECKING:
    from venvlayers.deploy.adopt import adopt_export
    from venvlayers.deploy.cleanup import gc, remove_apps
    from venvlayers.deploy.drift import LayerDrift, VerifyReport, verify
    from venvlayers.deploy.install import DeployResult, deploy
    from venvlayers.deploy.progress import DeployProgress
    from venvlayers.deploy.run import SmokeRun, run_app, smoke_run
    from venvlayers.deploy.sbom import stack_sbom

_HOMES = {
    "adopt_export": "adopt",
    "DeployProgress": "progress",
    "DeployResult": "install",
    "deploy": "install",
    "gc": "cleanup",
    "remove_apps": "cleanup",
    "run_app": "run",
    "SmokeRun": "run",
    "smoke_run": "run",
    "LayerDrift": "drift",
    "VerifyReport": "drift",
    "verify": "drift",
    "stack_sbom": "sbom",
}

__all__ = [
    "DeployProgress",
    "DeployResult",
    "LayerDrift",
    "SmokeRun",
    "VerifyReport",
    "adopt_export",
    "deploy",
    "gc",
    "held_archives",
    "remove_apps",
    "run_app",
    "smoke_run",
    "stack_sbom",
    "verify",
]


__getattr__ = lazy_attributes(__name__, _HOMES)


def held_archives(target: Path) -> dict[str, str]:
    """Install target -> sha256 of the archive, for each layer in place in ``target``.

    What a deploy would skip: a source that fetches archives (a registry) need not fetch
    these. A layer counts only as deploy counts it (install.py): the folder carries the
    token the record names and its file record is not left mid-compile. A folder a killed
    deploy moved in after the record, or one still compiling when the deploy died, will be
    unpacked again, so its archive must be fetched. Empty when nothing is deployed there.
    """
    from venvlayers.deploy.files import COMPILE_PENDING, load_files, marker_token
    from venvlayers.deploy.record import load_record

    held = {}
    for name, layer in load_record(target).layers.items():
        if not layer.token or marker_token(target / name) != layer.token:
            continue
        try:
            files = load_files(target, name, layer.token)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
        if files is not None and files.compile != COMPILE_PENDING:
            held[name] = layer.sha256
    return held
