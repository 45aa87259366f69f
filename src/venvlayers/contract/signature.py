"""Signatures over the stack metadata: OpenSSH's SSHSIG, made and checked by ``ssh-keygen -Y``.

``__venvstacks__/venvstacks.json`` binds every archive's and SBOM's sha256, so one
signature over its exact bytes covers the whole published output. The signature sits
beside it as ``venvstacks.json.sig`` (namespace ``venvlayers``); anyone can check it with
``ssh-keygen -Y verify -n venvlayers``. Keys are whatever ``ssh-keygen`` can use: a key
file, or a public key whose private half is in the agent or on a hardware token.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from venvlayers._proc import run
from venvlayers.contract.stack_metadata import STACK_METADATA
from venvlayers.errors import ToolError, VenvLayersError

NAMESPACE = "venvlayers"
SIGNATURE_SUFFIX = ".sig"
SIGNATURE = f"{STACK_METADATA}{SIGNATURE_SUFFIX}"


class SignatureError(VenvLayersError):
    """A signature is missing, made by a key not allowed, or does not match the metadata."""


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise SignatureError("ssh-keygen (OpenSSH 8.2 or newer) is needed to sign and verify")
    return found


def sign_bytes(data: bytes, key: Path) -> str:
    """The armored SSHSIG signature of ``data`` by ``key``."""
    with tempfile.TemporaryDirectory(prefix="venvlayers-sign-") as tmp:
        # A private copy: ssh-keygen writes <file>.sig beside what it signs and asks before
        # replacing one, so it never signs the published file in place.
        copy = Path(tmp) / "venvstacks.json"
        copy.write_bytes(data)
        try:
            run(
                [_ssh_keygen(), "-Y", "sign", "-f", key, "-n", NAMESPACE, "-q", copy],
                what=f"sign with {key}",
            )
        except ToolError as exc:
            raise SignatureError(f"{key}: cannot sign with this key ({_last_line(exc)})") from None
        return (copy.parent / f"{copy.name}{SIGNATURE_SUFFIX}").read_text(encoding="ascii")


def verify_bytes(data: bytes, signature: str, allowed_signers: Path, *, what: str) -> str:
    """The principal whose allowed key signed ``data``; :class:`SignatureError` otherwise."""
    if not allowed_signers.is_file():
        raise SignatureError(f"{allowed_signers}: no such allowed-signers file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError(f"{what}: not UTF-8 text, so no signature can match") from None
    keygen = _ssh_keygen()
    with tempfile.TemporaryDirectory(prefix="venvlayers-verify-") as tmp:
        sig = Path(tmp) / "signature"
        sig.write_text(signature, encoding="ascii")
        found = run(
            [keygen, "-Y", "find-principals", "-s", sig, "-f", allowed_signers],
            what="ssh-keygen -Y find-principals",
            check=False,
        )
        principals = [line.strip() for line in found.stdout.splitlines() if line.strip()]
        if found.returncode != 0 or not principals:
            raise SignatureError(f"{what}: signed by a key that {allowed_signers} does not allow")
        for principal in principals:
            checked = run(
                [
                    keygen, "-Y", "verify", "-f", allowed_signers, "-I", principal,
                    "-n", NAMESPACE, "-s", sig,
                ],
                what="ssh-keygen -Y verify",
                input=text,
                check=False,
            )  # fmt: skip
            if checked.returncode == 0:
                return principal
    raise SignatureError(
        f"{what}: the signature does not match (the metadata changed after signing)"
    )


def _last_line(exc: ToolError) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else "ssh-keygen failed"
