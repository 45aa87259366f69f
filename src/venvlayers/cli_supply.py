"""Supply-chain commands: `sign` a published output (and, later, read SBOMs of deployments).

See docs/supply-chain.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from venvlayers.cli_options import output_options
from venvlayers.cli_params import UserPath
from venvlayers.cli_report import emit


@click.command()
@click.argument("output", type=UserPath(folder=True, exists=True), metavar="OUTPUT")
@click.option(
    "--key", required=True, type=UserPath(exists=True), metavar="KEY",
    help="The SSH key to sign with: a private key file, or a public key whose private half"
    " ssh-keygen reaches through the agent (a hardware key, say).",
)  # fmt: skip
@output_options
def sign(output: Path, key: Path) -> None:
    """Sign OUTPUT's __venvstacks__/venvstacks.json with an SSH key (OpenSSH SSHSIG).

    The metadata binds every archive's and SBOM's sha256, so the signature covers the
    whole published output. It goes to __venvstacks__/venvstacks.json.sig; anyone can
    check it with `ssh-keygen -Y verify -n venvlayers`, and `deploy
    --require-signature ALLOWED_SIGNERS` refuses output it does not verify.
    """
    from venvlayers.publish import sign_output

    signature = sign_output(output, key)
    emit("sign", {"output": str(output), "signature": str(signature), "key": str(key)},
         [f"signed: {signature}"])  # fmt: skip


def register(group: click.Group) -> None:
    group.add_command(sign)
