"""``oci://HOST[:PORT]/REPO[:TAG|@DIGEST]`` references, parsed once at the edge."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from venvlayers.oci.errors import OciError

SCHEME = "oci://"

# The grammar of the OCI distribution spec, so a bad name is refused here, not by a 404.
_REPO = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?")


@dataclass(frozen=True)
class OciRef:
    host: str  # as written, with its port: "127.0.0.1:5000", "ghcr.io"
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when given, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def hostname(self) -> str:
        if self.host.startswith("["):
            return self.host[1 : self.host.index("]")]
        return self.host.split(":", 1)[0]

    @property
    def insecure(self) -> bool:
        """Plain HTTP, as container tools use for registries on the loopback interface."""
        if self.hostname == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.hostname).is_loopback
        except ValueError:
            return False

    def with_tag(self, tag: str) -> OciRef:
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        text = f"{SCHEME}{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_oci_ref(value: str) -> bool:
    return value.startswith(SCHEME)


def parse_oci_ref(value: str) -> OciRef:
    """Parse ``oci://HOST[:PORT]/REPO[:TAG][@DIGEST]``; :class:`OciError` says what is wrong."""
    if not is_oci_ref(value):
        raise OciError(f"{value}: not a registry reference; write oci://HOST[:PORT]/REPO[:TAG]")
    rest = value[len(SCHEME) :]
    host, slash, path = rest.partition("/")
    if not slash or not path or not _HOST.fullmatch(host):
        raise OciError(f"{value}: write oci://HOST[:PORT]/REPO[:TAG] (no registry host found)")
    digest = None
    if "@" in path:
        path, digest = path.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise OciError(f"{value}: digest {digest!r} is not sha256:<64 hex digits>")
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise OciError(
                f"{value}: tag {tag!r} is not valid (letters, digits, '.', '_', '-';"
                " at most 128 characters)"
            )
    if not _REPO.fullmatch(path):
        raise OciError(
            f"{value}: repository {path!r} is not valid (lower-case letters, digits and"
            " separators '.', '_', '-', '/')"
        )
    return OciRef(host=host, repository=path, tag=tag, digest=digest)
