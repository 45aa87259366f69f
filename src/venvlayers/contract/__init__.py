"""The layer contract: the files that pass between stages and to targets.

Stdlib only, imported by every stage and importing none: the stack metadata that publish
writes and deploy reads (``stack_metadata``), a layer's ``venvstacks_layer.json``
(``layer_metadata``), what a layer folder holds and its file manifest (``layer_files``,
``manifest``), how a layer's postinstall.py is run (``postinstall``) and the layer kinds.
Every reader checks its file as untrusted input and names the exact field it refuses.
"""

from __future__ import annotations

from venvlayers.contract.fields import NAME_MAX, Fields, check_name, load_json
from venvlayers.contract.kinds import LayerKind
from venvlayers.contract.stack_metadata import (
    LAYER_METADATA_DIR,
    MANIFESTS_DIR,
    METADATA_DIR,
    SBOM_DIR,
    STACK_METADATA,
    ArchiveFields,
    AttachedFile,
    DeltaFields,
    LayerPublication,
    parse_stack_metadata,
    read_stack_metadata,
    stack_index,
    write_stack_metadata,
)

__all__ = [
    "LAYER_METADATA_DIR",
    "MANIFESTS_DIR",
    "METADATA_DIR",
    "NAME_MAX",
    "SBOM_DIR",
    "STACK_METADATA",
    "ArchiveFields",
    "AttachedFile",
    "DeltaFields",
    "Fields",
    "LayerKind",
    "LayerPublication",
    "check_name",
    "load_json",
    "parse_stack_metadata",
    "read_stack_metadata",
    "stack_index",
    "write_stack_metadata",
]
