"""Signing the stack metadata with an SSH key, and checking it, through real ssh-keygen."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.deploy_support import fake_stack
from venvlayers.contract import STACK_METADATA
from venvlayers.contract.signature import SIGNATURE, SignatureError, verify_bytes
from venvlayers.publish.sign import sign_output

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def keypair(folder: Path, name: str) -> tuple[Path, str]:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@ci", "-f", key], check=True
    )
    return key, f"{name}@ci {key.with_suffix('.pub').read_text().strip()}\n"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_stack(tmp_path_factory.mktemp("signed"))


def test_a_signed_output_verifies_with_plain_ssh_keygen(published: Path, tmp_path: Path) -> None:
    key, line = keypair(tmp_path, "release")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(line)
    signature = sign_output(published, key)
    assert signature == published / SIGNATURE
    with (published / STACK_METADATA).open("rb") as metadata:
        checked = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "release@ci",
             "-n", "venvlayers", "-s", signature],
            stdin=metadata, capture_output=True, text=True,
        )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    data = (published / STACK_METADATA).read_bytes()
    assert verify_bytes(data, signature.read_text(), allowed, what="x") == "release@ci"


def test_an_edit_after_signing_or_an_unknown_key_is_refused(
    published: Path, tmp_path: Path
) -> None:
    key, line = keypair(tmp_path, "release")
    _, other_line = keypair(tmp_path, "stranger")
    sign_output(published, key)
    signature = (published / SIGNATURE).read_text()
    data = (published / STACK_METADATA).read_bytes()
    allowed = tmp_path / "allowed"
    allowed.write_text(line)
    with pytest.raises(SignatureError, match="the metadata changed after signing"):
        verify_bytes(data.replace(b'"lock_version": 1', b'"lock_version": 2'), signature,
                     allowed, what="out")  # fmt: skip
    strangers = tmp_path / "strangers"
    strangers.write_text(other_line)
    with pytest.raises(SignatureError, match="does not allow"):
        verify_bytes(data, signature, strangers, what="out")


def test_a_key_that_cannot_sign_is_one_line(published: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-key"
    bogus.write_text("nothing\n")
    with pytest.raises(SignatureError, match="cannot sign with this key") as caught:
        sign_output(published, bogus)
    assert "\n" not in str(caught.value)
