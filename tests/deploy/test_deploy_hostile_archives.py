"""Hostile and broken archives, published with matching size and sha256: only deploy's own
checks stand between them and the disk.

Every refusal is one line naming the archive and what is wrong, and leaves the target
exactly as it was: a fresh target is not even created, and nothing beside it changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from tests.deploy.deploy_support import (
    FORMATS,
    Entry,
    archive_of,
    deploy_command,
    deploy_in_subprocess,
    entries_of,
    private_copy,
    replace_archive,
    run_layer_python,
    set_published,
    snapshot,
    stacks_in_every_format,
    tar_entry,
    write_archive,
    write_zip,
)
from tests.deploy.deploy_support import (
    quick_deploy as deploy,
)
from venvlayers._fs import sha256_file
from venvlayers.deploy import install, preflight
from venvlayers.errors import DeployError

APP = "app-other"
TAR_FORMATS = tuple(fmt for fmt in FORMATS if fmt != ".zip")


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return stacks_in_every_format(tmp_path_factory.mktemp("published"))


@pytest.fixture
def outer(tmp_path: Path) -> Path:
    """The folder the target sits in: an escape lands here or higher."""
    folder = tmp_path / "outer"
    folder.mkdir()
    return folder


def craft(source: Path, install_target: str, entries: list[Entry]) -> None:
    """Replace the layer's archive with ``entries``, published with matching size and hash."""
    replace_archive(source, install_target, entries)
    archive = archive_of(source, install_target)
    set_published(source, install_target, size=archive.stat().st_size, sha256=sha256_file(archive))


def assert_refused(source: Path, outer: Path, *expected: str) -> str:
    """Deploy into a fresh target beside nothing else: refused, and nothing at all written."""
    target = outer / "deploy"
    before = snapshot(outer)
    with pytest.raises(DeployError) as caught:
        deploy(source, target)
    text = str(caught.value)
    assert "\n" not in text
    for part in expected:
        assert part in text, text
    assert not target.exists(), sorted(p.name for p in target.iterdir())
    assert snapshot(outer) == before
    return text


# --- 1. escapes through chains of links ------------------------------------------------------

LINK_CHAINS = {
    # d1/L leads back to the layer folder; climbing twice from there leaves it, though
    # the text "d1/L/../../ESCAPED" reads as a harmless "ESCAPED".
    "climb-after-link": [
        tar_entry(f"{APP}/d1", tarfile.DIRTYPE),
        tar_entry(f"{APP}/d1/L", tarfile.SYMTYPE, link=".."),
        tar_entry(f"{APP}/lib2", tarfile.SYMTYPE, link="d1/L/../../ESCAPED"),
    ],
    # Each link stays inside on its own; followed one after the other they leave.
    "link-to-climbing-link": [
        tar_entry(f"{APP}/a", tarfile.DIRTYPE),
        tar_entry(f"{APP}/a/b", tarfile.DIRTYPE),
        tar_entry(f"{APP}/a/b/up", tarfile.SYMTYPE, link="../.."),
        tar_entry(f"{APP}/a/b/out", tarfile.SYMTYPE, link="up/.."),
    ],
    "link-loop": [
        tar_entry(f"{APP}/x", tarfile.SYMTYPE, link="y"),
        tar_entry(f"{APP}/y", tarfile.SYMTYPE, link="x/.."),
    ],
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(LINK_CHAINS))
def test_a_chain_of_links_leaving_the_layer_is_refused_before_anything_is_written(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str, case: str
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    craft(source, APP, [*entries_of(stacks, APP), *LINK_CHAINS[case]])
    text = assert_refused(source, outer, f"{APP}{fmt}: refused, member", "nothing in")
    assert "link leaving its layer" in text or "loop of links" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_member_below_a_file_is_refused_before_anything_is_written(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    hostile = [
        tar_entry(f"{APP}/plain", data=b"a file\n"),
        tar_entry(f"{APP}/plain/planted.py", data=b"planted = 1\n"),
    ]
    craft(source, APP, [*entries_of(stacks, APP), *hostile])
    assert_refused(source, outer, f"member '{APP}/plain/planted.py' lies below the file 'plain'")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_refused_archive_leaves_an_existing_deployment_as_it_was(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str
) -> None:
    target = outer / "deploy"
    deploy(stacks[fmt], target, apps=["hello"])
    source = private_copy(stacks, fmt, tmp_path)
    craft(source, APP, [*entries_of(stacks, APP), *LINK_CHAINS["climb-after-link"]])
    before = snapshot(outer)
    with pytest.raises(DeployError, match="link leaving its layer"):
        deploy(source, target)
    assert snapshot(outer) == before
    assert run_layer_python(target, "hello").returncode == 0


# --- 2. decompression bombs --------------------------------------------------------------------

BOMB_SIZE = 16 << 20


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_archive_expanding_past_the_free_space_is_refused_while_scanning(
    stacks: dict[str, Path],
    tmp_path: Path,
    outer: Path,
    fmt: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    if fmt == ".zip":
        archive = archive_of(source, APP)
        archive.unlink()
        write_zip(archive, entries_of(stacks, APP))
        with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{APP}/zeros.bin", bytes(BOMB_SIZE))
        publish_raw(source, APP, archive.read_bytes())
    else:
        craft(
            source,
            APP,
            [*entries_of(stacks, APP), tar_entry(f"{APP}/zeros.bin", data=bytes(BOMB_SIZE))],
        )
    assert archive_of(source, APP).stat().st_size < BOMB_SIZE // 100
    # As if the disk had 4 MiB free: the 16 MiB member must not be unpacked.
    monkeypatch.setattr(preflight, "free_space", lambda _path: 4 << 20)
    assert_refused(
        source, outer, f"{APP}{fmt}: refused, expands to more than the 4194304 bytes free"
    )


def raw_tar_stream(blocks: bytes, fmt: str) -> bytes:
    """``blocks`` (tar headers and data, not necessarily consistent) compressed as ``fmt``."""
    if fmt == ".tar.zst":
        return zstandard.ZstdCompressor().compress(blocks)
    if fmt == ".tar.xz":
        import lzma

        return lzma.compress(blocks)
    import gzip

    return gzip.compress(blocks, mtime=0)


def publish_raw(source: Path, install_target: str, data: bytes) -> None:
    """Put ``data`` in place of the layer's archive, with matching size and sha256."""
    archive_of(source, install_target).write_bytes(data)
    set_published(source, install_target, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info.tobuf(format=tarfile.PAX_FORMAT)


@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_a_member_claiming_a_petabyte_is_refused_at_its_header(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    blocks = header(APP, 0, tarfile.DIRTYPE) + header(f"{APP}/huge", 1 << 50) + bytes(1 << 16)
    publish_raw(source, APP, raw_tar_stream(blocks, fmt))
    assert_refused(source, outer, f"{APP}{fmt}: refused, expands to more than the")


@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_a_giant_tar_header_is_refused_before_it_is_read_into_memory(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    # A pax header holding 64 MiB of records: tarfile would read all of it into memory.
    blocks = header(APP, 0, tarfile.DIRTYPE) + header("pax", 64 << 20, tarfile.XHDTYPE)
    blocks += bytes(64 << 20) + header(f"{APP}/x", 0)
    publish_raw(source, APP, raw_tar_stream(blocks, fmt))
    assert_refused(source, outer, f"{APP}{fmt}: refused, has a member header larger than")


def zip_with_lying_size(
    path: Path, entries: list[Entry], name: str, real: bytes, claim: int
) -> None:
    """A zip of ``entries`` plus ``name`` whose deflated data is ``real`` but whose headers
    declare ``claim`` bytes (with the CRC-32 of the first ``claim`` bytes, as zipfile checks)."""
    write_zip(path, entries)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name)
        info.external_attr = 0o100644 << 16
        zf.writestr(info, real)
    data = bytearray(path.read_bytes())
    true_size, true_crc = len(real), zlib.crc32(real)
    fake = (zlib.crc32(real[:claim]).to_bytes(4, "little"), claim.to_bytes(4, "little"))
    encoded = name.encode()
    # Local header: crc at 14, uncompressed size at 22; central: crc at 16, size at 24.
    for signature, crc_at, size_at in ((b"PK\x03\x04", 14, 22), (b"PK\x01\x02", 16, 24)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            name_at = 30 if signature == b"PK\x03\x04" else 46
            if (
                data[start + name_at : start + name_at + len(encoded)] == encoded
                and int.from_bytes(data[start + size_at : start + size_at + 4], "little")
                == true_size
            ):
                assert (
                    int.from_bytes(data[start + crc_at : start + crc_at + 4], "little") == true_crc
                )
                data[start + crc_at : start + crc_at + 4] = fake[0]
                data[start + size_at : start + size_at + 4] = fake[1]
            start += 4
    path.write_bytes(bytes(data))


def test_a_zip_member_holding_more_than_it_declares_is_refused(
    stacks: dict[str, Path], tmp_path: Path, outer: Path
) -> None:
    source = private_copy(stacks, ".zip", tmp_path)
    archive = archive_of(source, APP)
    archive.unlink()
    zip_with_lying_size(archive, entries_of(stacks, APP), f"{APP}/small.txt", b"A" * (1 << 20), 10)
    publish_raw(source, APP, archive.read_bytes())
    assert_refused(source, outer, f"member '{APP}/small.txt' holds more than its declared 10 bytes")


# --- 3. tar hard links ---------------------------------------------------------------------------

HARD_LINKS = {
    "to-a-folder": (
        tar_entry(f"{APP}/folder-copy", tarfile.LNKTYPE, link=f"{APP}/lib"),
        "is a hard link to the folder",
    ),
    "to-a-missing-member": (
        tar_entry(f"{APP}/ghost", tarfile.LNKTYPE, link=f"{APP}/no-such-file"),
        "not a file earlier in the archive",
    ),
    "to-a-later-member": (
        tar_entry(f"{APP}/early", tarfile.LNKTYPE, link=f"{APP}/zz-late.txt"),
        "not a file earlier in the archive",
    ),
}


@pytest.mark.parametrize("fmt", TAR_FORMATS)
@pytest.mark.parametrize("case", sorted(HARD_LINKS))
def test_a_bad_hard_link_is_refused_in_one_line(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str, case: str
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    entry, reason = HARD_LINKS[case]
    entries = [*entries_of(stacks, APP), entry, tar_entry(f"{APP}/zz-late.txt", data=b"late\n")]
    craft(source, APP, entries)
    assert_refused(source, outer, f"{APP}{fmt}: refused, member {entry[0].name!r}", reason)


# --- 5. archives that are not regular files ------------------------------------------------------


def deploy_with_timeout(source: Path, target: Path) -> subprocess.CompletedProcess[str]:
    """A deploy that must end: a hang fails the test instead of blocking the run."""
    try:
        return subprocess.run(
            deploy_command(source, target), capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("deploy hung reading the archive")


def point_archive_at(source: Path, install_target: str, make: str) -> Path:
    """Replace the layer's archive with something that is not a regular file in SOURCE."""
    archive = archive_of(source, install_target)
    archive.unlink()
    if make == "dev-zero":
        archive.symlink_to("/dev/zero")
    elif make == "fifo":
        os.mkfifo(archive)
    elif make == "link-outside":
        outside = source.parent / "elsewhere.tar.zst"
        outside.write_bytes(b"")
        archive.symlink_to(outside)
    # Published as the empty file the size check would see, so only the type tells.
    set_published(source, install_target, size=0, sha256=hashlib.sha256(b"").hexdigest())
    return archive


@pytest.mark.skipif(sys.platform == "win32", reason="no /dev/zero or FIFOs")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        ("dev-zero", "leads outside the published folder"),
        ("fifo", "is not a regular file"),
        ("link-outside", "leads outside the published folder"),
    ],
)
def test_an_archive_that_is_not_a_regular_file_in_source_is_refused_at_once(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str, make: str, reason: str
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    archive = point_archive_at(source, APP, make)
    before = snapshot(outer)
    done = deploy_with_timeout(source, outer / "deploy")
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{archive}: refused, {reason}"), done.stderr
    assert "Traceback" not in done.stderr
    assert not (outer / "deploy").exists()
    assert snapshot(outer) == before


def test_an_archive_linked_to_a_file_inside_source_is_read(
    stacks: dict[str, Path], tmp_path: Path, outer: Path
) -> None:
    source = private_copy(stacks, ".tar.zst", tmp_path)
    archive = archive_of(source, APP)
    (source / "store").mkdir()
    archive.rename(source / "store" / archive.name)
    archive.symlink_to(Path("store") / archive.name)
    deploy(source, outer / "deploy")
    assert run_layer_python(outer / "deploy", "other").returncode == 0


# --- 6. an archive swapped after its check ---------------------------------------------------------


def evil_variant(stacks: dict[str, Path], fmt: str, where: Path) -> Path:
    """The same layer with a planted module, written as ``fmt`` (not published)."""
    entries = [*entries_of(stacks, APP), tar_entry(f"{APP}/planted.py", data=b"planted = 1\n")]
    return write_archive(where / f"evil{fmt}", entries)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_archive_swapped_between_check_and_unpack_is_never_read(
    stacks: dict[str, Path],
    tmp_path: Path,
    outer: Path,
    fmt: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = private_copy(stacks, fmt, tmp_path)
    evil = evil_variant(stacks, fmt, tmp_path)
    archive = archive_of(source, APP)
    real_lock = install.target_lock

    def swap_then_lock(target: Path, report: object) -> Iterator[None]:
        # Checking is done; unpacking comes next, under the lock.
        os.replace(evil, archive)
        return real_lock(target, report)  # type: ignore[arg-type]

    monkeypatch.setattr(install, "target_lock", swap_then_lock)
    target = outer / "deploy"
    deploy(source, target)
    # What was checked is what was unpacked: the open file, not whatever has the name now.
    assert not (target / APP / "planted.py").exists()
    assert run_layer_python(target, "other").returncode == 0


def test_a_zip_swapped_between_hashing_and_reading_is_never_read(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = private_copy(stacks, ".zip", tmp_path)
    evil = evil_variant(stacks, ".zip", tmp_path)
    archive = archive_of(source, APP)
    checked = os.stat(archive)
    real_init = zipfile.ZipFile.__init__
    opened: list[object] = []

    def is_the_archive(file: object) -> bool:
        if isinstance(file, str | Path):
            return os.path.samestat(os.stat(file), checked)
        fileno = getattr(file, "fileno", None)
        return fileno is not None and os.path.samestat(os.fstat(fileno()), checked)

    def swap_on_second_read(
        self: zipfile.ZipFile, file: object, *args: object, **kw: object
    ) -> None:
        if evil.exists() and is_the_archive(file):
            opened.append(file)
            if len(opened) == 1:
                # The archive has been hashed, and now the name changes hands before its
                # members are read.
                os.replace(evil, archive)
        real_init(self, file, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "__init__", swap_on_second_read)
    target = outer / "deploy"
    deploy(source, target, apps=["other"])
    assert len(opened) == 1
    assert not (target / APP / "planted.py").exists()
    assert run_layer_python(target, "other").returncode == 0


# --- the deploy command: one line, exit 1, no traceback ---------------------------------------------


def test_a_hostile_archive_fails_the_deploy_process_with_one_line(
    stacks: dict[str, Path], tmp_path: Path, outer: Path
) -> None:
    source = private_copy(stacks, ".zip", tmp_path)
    craft(source, APP, [*entries_of(stacks, APP), *LINK_CHAINS["climb-after-link"]])
    done = deploy_in_subprocess(source, outer / "deploy")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"{archive_of(source, APP)}: refused")
    assert not (outer / "deploy").exists()
    assert not (outer / "ESCAPED").exists()
