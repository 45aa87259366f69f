"""Registries: push a published stack, deploy from one, build container images of apps.

The public face of the stage; the CLI uses only these names. Registry traffic goes
through a small client of its own (``client.py``: docs/registries.md says why). Names are
imported on first use, so the CLI can parse an ``oci://`` argument without loading the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venvlayers._lazy import lazy_attributes

if TYPE_CHECKING:
    from venvlayers.oci.client import Counters
    from venvlayers.oci.errors import OciError, OciInterrupted
    from venvlayers.oci.image import ImageResult, build_image
    from venvlayers.oci.pull import PullResult, deploy_from_registry
    from venvlayers.oci.push import PushResult, push_output
    from venvlayers.oci.ref import OciRef, is_oci_ref, parse_oci_ref

_HOMES = {
    "Counters": "client",
    "OciError": "errors",
    "OciInterrupted": "errors",
    "ImageResult": "image",
    "build_image": "image",
    "PullResult": "pull",
    "deploy_from_registry": "pull",
    "PushResult": "push",
    "push_output": "push",
    "OciRef": "ref",
    "is_oci_ref": "ref",
    "parse_oci_ref": "ref",
}

__all__ = [
    "Counters",
    "ImageResult",
    "OciError",
    "OciInterrupted",
    "OciRef",
    "PullResult",
    "PushResult",
    "build_image",
    "deploy_from_registry",
    "is_oci_ref",
    "parse_oci_ref",
    "push_output",
]


__getattr__ = lazy_attributes(__name__, _HOMES)
