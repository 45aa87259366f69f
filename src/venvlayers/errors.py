"""Error classes. Each message is one line a user can act on.

The CLI prints ``str(error)`` for any :class:`VenvLayersError` and exits 1;
a traceback is shown only with ``--debug`` or ``-vv``.
"""

from __future__ import annotations


class VenvLayersError(Exception):
    """Base class of every error reported to the user without a traceback."""


class SpecError(VenvLayersError):
    """The stack specification is malformed; the message names the layer and field."""


class LockError(VenvLayersError):
    """A layer could not be locked, or a lock is missing or invalid."""


class RuntimeProviderError(VenvLayersError):
    """A runtime could not be found, downloaded or made relocatable."""


class BuildError(VenvLayersError):
    """A layer environment could not be built."""


class PublishError(VenvLayersError):
    """A layer archive or the published metadata could not be written."""


class DeployError(VenvLayersError):
    """A deployment was refused or failed; the target keeps its previous state."""


class ToolError(VenvLayersError):
    """An external tool (uv, patchelf, ...) failed; the message quotes its output."""


class MetadataError(VenvLayersError):
    """A layer-contract file (stack or layer metadata, manifest) is malformed or unsafe;
    the message names the file and the exact field."""
