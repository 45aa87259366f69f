"""The one error class of the registry stage."""

from __future__ import annotations

from venvlayers.errors import VenvLayersError


class OciError(VenvLayersError):
    """A registry refused, was unreachable, or served content that does not check out.

    The message names the registry, repository, tag or blob and says what to do; nothing
    in the deployment target or the published output has been changed.
    """


class OciInterrupted(OciError):
    """A transfer broke off part way; what arrived is kept, and running again resumes."""
