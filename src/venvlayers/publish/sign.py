"""`venvlayers sign`: sign a published output's stack metadata with an SSH key."""

from __future__ import annotations

from pathlib import Path

from venvlayers._fs import atomic_write_text
from venvlayers.contract import STACK_METADATA, read_stack_metadata
from venvlayers.contract.signature import SIGNATURE, sign_bytes


def sign_output(output_dir: Path, key: Path) -> Path:
    """Write ``__venvstacks__/venvstacks.json.sig`` for the metadata as it is now.

    The metadata is read (and so checked) first: a signature is only ever made over a
    stack metadata file venvlayers itself accepts.
    """
    read_stack_metadata(output_dir)
    data = (output_dir / STACK_METADATA).read_bytes()
    signature = output_dir / SIGNATURE
    atomic_write_text(signature, sign_bytes(data, key), mode=0o644)
    return signature
