"""Media types and annotation keys: what a venvlayers stack looks like in a registry.

A pushed stack is one OCI image manifest (``application/vnd.oci.image.manifest.v1+json``)
with ``artifactType`` :data:`STACK_ARTIFACT`. Its config is the stack metadata
(``venvstacks.json``), and each layer archive is one entry of ``layers``, stored as it is,
so its digest is the ``sha256`` in the metadata. Readers find layers by digest and skip
entries whose media type they do not know: deltas, SBOMs and the like are added as further
entries with their own types without breaking older readers.
"""

from __future__ import annotations

from venvlayers.oci.errors import OciError

STACK_ARTIFACT = "application/vnd.venvlayers.stack.v1"
STACK_CONFIG = "application/vnd.venvlayers.stack.config.v1+json"
# Reserved for the blobs the issue plans; none is written yet.
DELTA_PREFIX = "application/vnd.venvlayers.delta.v1"
SBOM = "application/spdx+json"

_LAYER_TYPES = {
    ".tar.zst": "application/vnd.venvlayers.layer.v1.tar+zstd",
    ".tar.xz": "application/vnd.venvlayers.layer.v1.tar+xz",
    ".tar.gz": "application/vnd.venvlayers.layer.v1.tar+gzip",
    ".zip": "application/vnd.venvlayers.layer.v1.zip",
}
LAYER_TYPES = frozenset(_LAYER_TYPES.values())

TITLE = "org.opencontainers.image.title"
INSTALL_TARGET = "org.venvlayers.layer.install_target"
LAYER_KIND = "org.venvlayers.layer.kind"
STACK_APPS = "org.venvlayers.stack.apps"

# Container images built by `venvlayers image`.
IMAGE_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
IMAGE_APP = "org.venvlayers.image.app"
IMAGE_LAYERS = "org.venvlayers.image.layers"


def layer_media_type(archive_name: str) -> str:
    for suffix, media_type in _LAYER_TYPES.items():
        if archive_name.endswith(suffix):
            return media_type
    raise OciError(f"{archive_name}: an archive format venvlayers cannot push; publish again")
