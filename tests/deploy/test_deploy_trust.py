"""Targets that require a signature: refused before any change unless the output is signed
by an allowed key and unchanged since; verify checks the signature again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_support import (
    fake_stack,
    read_tar_entries,
    replace_archive,
    rewrite_index,
    tar_entry,
)
from venvlayers.publish.sign import sign_output

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def venvlayers(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args), "--no-compile"]
        if args[0] == "deploy"
        else [sys.executable, "-m", "venvlayers", *map(str, args)],
        capture_output=True,
        text=True,
    )


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    found = {}
    for name in ("release", "stranger"):
        key = folder / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        allowed = folder / f"{name}.allowed"
        allowed.write_text(f"{name}@ci {key.with_suffix('.pub').read_text()}")
        found[name], found[f"{name}.allowed"] = key, allowed
    return found


@pytest.fixture
def signed(tmp_path: Path, keys: dict[str, Path]) -> Path:
    out = fake_stack(tmp_path / "stack")
    sign_output(out, keys["release"])
    return out


def test_a_signed_output_deploys_and_the_target_keeps_requiring_it(
    signed: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    target = tmp_path / "target"
    ok = venvlayers("deploy", signed, "--target", target, "--require-signature",
                    keys["release.allowed"])  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert venvlayers("verify", target).returncode == 0

    # Later deploys require it without the flag: unsigned output is refused.
    unsigned = fake_stack(tmp_path / "v2", version=2)
    before = sorted(p.name for p in target.iterdir())
    refused(venvlayers("deploy", unsigned, "--target", target), "unsigned", "requires it")
    assert sorted(p.name for p in target.iterdir()) == before


def test_unsigned_output_is_refused_before_the_target_exists(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    out = fake_stack(tmp_path / "stack")
    target = tmp_path / "target"
    refused(
        venvlayers("deploy", out, "--target", target, "--require-signature",
                   keys["release.allowed"]),
        "unsigned",
    )  # fmt: skip
    assert not target.exists()


def test_a_signature_by_another_key_is_refused(
    signed: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    target = tmp_path / "target"
    refused(
        venvlayers("deploy", signed, "--target", target, "--require-signature",
                   keys["stranger.allowed"]),
        "does not allow",
    )  # fmt: skip
    assert not target.exists()


def test_metadata_edited_after_signing_is_refused(
    signed: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    index = json.loads((signed / "__venvstacks__/venvstacks.json").read_text())
    index["layers"]["applications"][0]["lock_version"] = 9
    rewrite_index(signed, index)
    target = tmp_path / "target"
    refused(
        venvlayers("deploy", signed, "--target", target, "--require-signature",
                   keys["release.allowed"]),
        "changed after signing",
    )  # fmt: skip
    assert not target.exists()


def test_an_archive_swapped_with_its_hash_edited_is_refused(
    signed: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    archive = next(signed.glob("app-hello.*"))
    before = (signed / "__venvstacks__/venvstacks.json").read_bytes()
    entries = [
        tar_entry(member.name, data=b"print('not what was signed')\n")
        if member.name.endswith("/hello.py")
        else (member, data)
        for member, data in read_tar_entries(archive)
    ]
    replace_archive(signed, "app-hello", entries)  # the new archive's hash published
    after = json.loads((signed / "__venvstacks__/venvstacks.json").read_text())
    assert json.loads(before) != after, "the archive really changed"
    target = tmp_path / "target"
    refused(
        venvlayers("deploy", signed, "--target", target, "--require-signature",
                   keys["release.allowed"]),
        "changed after signing",
    )  # fmt: skip
    assert not target.exists()


def test_verify_checks_the_signature_of_what_was_deployed(
    signed: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    target = tmp_path / "target"
    assert venvlayers("deploy", signed, "--target", target, "--require-signature",
                      keys["release.allowed"]).returncode == 0  # fmt: skip
    kept = target / ".venvlayers/trust/venvstacks.json"
    kept.write_bytes(kept.read_bytes().replace(b'"lock_version": 1', b'"lock_version": 3'))
    result = venvlayers("verify", target)
    assert result.returncode == 1
    assert "changed after signing" in result.stdout + result.stderr
