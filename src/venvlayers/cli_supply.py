"""Supply-chain commands: `sign` a published output (and, later, read SBOMs of deployments).

See docs/supply-chain.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from venvlayers import ui
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


@click.command()
@click.argument("target", type=UserPath(folder=True, exists=True), metavar="DIR")
@click.argument("app", metavar="APP")
@output_options
def sbom(target: Path, app: str) -> None:
    """Print the CycloneDX SBOM of APP deployed in DIR, with every layer beneath it.

    Each layer carries its own SBOM (share/venv/metadata/sbom.cdx.json); this joins the
    app's and its frameworks' and runtime's into one document on stdout.
    """
    from venvlayers.deploy import stack_sbom

    ui.emit_json(stack_sbom(target, app))


def register(group: click.Group) -> None:
    group.add_command(sign)
    group.add_command(sbom)
