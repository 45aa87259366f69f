"""Publish: one reproducible archive per built layer, plus the stack metadata.

The public face is what the CLI and the pipeline call; every other module here is private.
Names are imported on first use, so importing a submodule does not load the whole stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venvlayers._lazy import lazy_attributes

if TYPE_CHECKING:
    from venvlayers.publish.export import ExportResult, export_stack
    from venvlayers.publish.progress import archive_progress
    from venvlayers.publish.sign import sign_output
    from venvlayers.publish.stage import (
        PublishOptions,
        PublishResult,
        default_output_dir,
        publish_stack,
    )

_HOMES = {
    "ExportResult": "export",
    "PublishOptions": "stage",
    "PublishResult": "stage",
    "archive_progress": "progress",
    "default_output_dir": "stage",
    "export_stack": "export",
    "publish_stack": "stage",
    "sign_output": "sign",
}

__all__ = [
    "ExportResult",
    "PublishOptions",
    "PublishResult",
    "archive_progress",
    "default_output_dir",
    "export_stack",
    "publish_stack",
    "sign_output",
]


__getattr__ = lazy_attributes(__name__, _HOMES)
