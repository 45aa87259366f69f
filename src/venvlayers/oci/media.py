"""Media types and annotation keys: what a venvlayers stack looks like in a registry.

A pushed stack is one OCI image manifest (``application/vnd.oci.image.manifest.v1+json``)
with ``artifactType`` :data:`STACK_ARTIFACT`. Its config is the stack metadata
(``venvstacks.json``, its bytes as published, so its signature still matches), and each
file of the published output is one entry of ``layers``, stored as it is: layer archives
(their digest is the ``sha256`` in the metadata), delta archives, the signature, SBOMs,
layer manifests and ``env_metadata`` files, each with its own media type. Readers find
what they need by media type and digest and skip entries whose type they do not know.
"""

from __future__ import annotations

from venvlayers.oci.errors import OciError

STACK_ARTIFACT = "application/vnd.venvlayers.stack.v1"
STACK_CONFIG = "application/vnd.venvlayers.stack.config.v1+json"
# The files of ``__venvstacks__/`` beside the metadata (docs/registries.md).
SIGNATURE = "application/vnd.venvlayers.signature.v1+sshsig"
SBOM = "application/vnd.cyclonedx+json"
LAYER_MANIFEST = "application/vnd.venvlayers.layer.manifest.v1+json"
LAYER_METADATA = "application/vnd.venvlayers.layer.metadata.v1+json"

_LAYER_TYPES = {
    ".tar.zst": "application/vnd.venvlayers.layer.v1.tar+zstd",
    ".tar.xz": "application/vnd.venvlayers.layer.v1.tar+xz",
    ".tar.gz": "application/vnd.venvlayers.layer.v1.tar+gzip",
    ".zip": "application/vnd.venvlayers.layer.v1.zip",
}
LAYER_TYPES = frozenset(_LAYER_TYPES.values())
_DELTA_TYPES = {
    suffix: media_type.replace(".layer.v1.", ".delta.v1.")
    for suffix, media_type in _LAYER_TYPES.items()
}
DELTA_TYPES = frozenset(_DELTA_TYPES.values())

TITLE = "org.opencontainers.image.title"
INSTALL_TARGET = "org.venvlayers.layer.install_target"
LAYER_KIND = "org.venvlayers.layer.kind"
STACK_APPS = "org.venvlayers.stack.apps"

# Container images built by `venvlayers image`.
IMAGE_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
IMAGE_APP = "org.venvlayers.image.app"
IMAGE_LAYERS = "org.venvlayers.image.layers"


def layer_media_type(archive_name: str, *, delta: bool = False) -> str:
    for suffix, media_type in (_DELTA_TYPES if delta else _LAYER_TYPES).items():
        if archive_name.endswith(suffix):
            return media_type
    raise OciError(f"{archive_name}: an archive format venvlayers cannot push; publish again")
