"""Signed deploys: a target that requires a signature takes only output its signers signed.

``deploy --require-signature ALLOWED_SIGNERS`` checks the output's
``__venvstacks__/venvstacks.json.sig`` (OpenSSH SSHSIG, see contract/signature.py) before
anything on the target changes, and keeps a copy of ALLOWED_SIGNERS in the target's
``.venvlayers/trust/``: from then on every deploy to it requires a signature by those keys,
flag or not. The signed metadata and its signature are kept there too, so ``verify`` can
check the signature again and that every deployed layer came from an archive it lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvlayers._fs import atomic_write_bytes, atomic_write_text
from venvlayers.contract import STACK_METADATA, LayerPublication, parse_stack_metadata
from venvlayers.contract.signature import (
    SIGNATURE,
    SIGNATURE_SUFFIX,
    SignatureError,
    verify_bytes,
)
from venvlayers.deploy.record import STATE_DIR
from venvlayers.errors import DeployError, MetadataError

TRUST_DIR = f"{STATE_DIR}/trust"
ALLOWED_SIGNERS = f"{TRUST_DIR}/allowed_signers"
SIGNED_METADATA = f"{TRUST_DIR}/venvstacks.json"
SIGNED_SIGNATURE = f"{SIGNED_METADATA}.sig"


@dataclass(frozen=True)
class Trust:
    """What a deploy checked: nothing (no signature required), or the signed metadata."""

    allowed_signers: bytes | None = None
    metadata: bytes | None = None
    signature: str | None = None
    principal: str | None = None

    @property
    def required(self) -> bool:
        return self.allowed_signers is not None


def check_trust(source: Path, target: Path, require_signature: Path | None) -> Trust:
    """The signature check a deploy of ``source`` into ``target`` needs, done now.

    :class:`DeployError` (before the target changes) when the target or the command
    requires a signature and the output is unsigned, signed by another key, or changed
    after signing.
    """
    stored = target / ALLOWED_SIGNERS
    policy = require_signature or (stored if stored.is_file() else None)
    if policy is None:
        return Trust()
    metadata = source / STACK_METADATA if source.is_dir() else source
    signature = metadata.with_name(metadata.name + SIGNATURE_SUFFIX)
    why = "--require-signature" if require_signature else f"{target} requires it"
    if not signature.is_file():
        raise DeployError(
            f"{source}: unsigned output (no {SIGNATURE}); a signature by {policy} is required"
            f" ({why}); sign it with `venvlayers sign`"
        )
    try:
        data = metadata.read_bytes()
        text = signature.read_text(encoding="ascii")
        principal = verify_bytes(data, text, policy, what=str(metadata))
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"{signature}: unreadable signature ({exc})") from None
    except SignatureError as exc:
        raise DeployError(f"{exc} ({why})") from None
    return Trust(policy.read_bytes(), data, text, principal)


def check_plan_signed(trust: Trust, layers: Sequence[LayerPublication]) -> None:
    """Every archive the deploy will use is one the signed metadata lists (the metadata
    file is read again to plan, so a swap after the check must not slip through)."""
    if trust.metadata is None:
        return
    signed = _signed_archives(trust.metadata)
    for layer in layers:
        archive = layer.archive
        sha256 = archive.archive_hashes.get("sha256") if archive else None
        if signed.get(layer.install_target) != sha256:
            raise DeployError(
                f"{layer.install_target}: the stack metadata changed after its signature was"
                " checked; deploy again"
            )


def remember_trust(target: Path, trust: Trust) -> None:
    """Keep the policy and what was deployed under it (called under the target's lock)."""
    if trust.allowed_signers is None or trust.metadata is None or trust.signature is None:
        return
    atomic_write_bytes(target / ALLOWED_SIGNERS, trust.allowed_signers, mode=0o644)
    atomic_write_bytes(target / SIGNED_METADATA, trust.metadata, mode=0o644)
    atomic_write_text(target / SIGNED_SIGNATURE, trust.signature, mode=0o644)


def trust_problems(target: Path, deployed: Mapping[str, str]) -> list[str]:
    """For ``verify``: why the deployment no longer stands on its signature, if it must.

    ``deployed`` maps each deployed install target to the sha256 of its archive.
    """
    allowed = target / ALLOWED_SIGNERS
    if not allowed.is_file():
        return []
    try:
        data = (target / SIGNED_METADATA).read_bytes()
        text = (target / SIGNED_SIGNATURE).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return [f"{TRUST_DIR}: the signed metadata of this deployment is missing; deploy again"]
    try:
        verify_bytes(data, text, allowed, what=SIGNED_METADATA)
    except SignatureError as exc:
        return [str(exc)]
    try:
        signed = _signed_archives(data)
    except MetadataError as exc:
        return [str(exc)]
    return [
        f"{name}: deployed from an archive the signed metadata does not list"
        for name, sha256 in sorted(deployed.items())
        if sha256 and signed.get(name) != sha256
    ]


def _signed_archives(data: bytes) -> dict[str, str]:
    """install target -> archive sha256, from signed (so trusted) stack metadata, read by
    the contract's own reader."""
    return {
        layer.install_target: layer.archive.archive_hashes["sha256"]
        for layer in parse_stack_metadata(data, origin=SIGNED_METADATA)
        if layer.archive is not None
    }
