"""Archive readers: every format unpacks a layer faithfully; damaged or hostile ones are refused."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from tests.deploy.deploy_support import FORMATS, tar_entry, write_archive
from venvlayers._fs import sha256_file
from venvlayers.deploy.extract import (
    ArchiveRefused,
    extract_archive,
    format_for,
    inspect_archive,
)

TOP = "app-demo"


def good_entries() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [
        tar_entry(TOP, tarfile.DIRTYPE),
        tar_entry(f"{TOP}/bin", tarfile.DIRTYPE),
        tar_entry(f"{TOP}/bin/tool", data=b"#!/bin/sh\necho hi\n", mode=0o755),
        tar_entry(f"{TOP}/lib", tarfile.DIRTYPE),
        tar_entry(f"{TOP}/lib/libx.so.1", data=b"ELF..."),
        tar_entry(f"{TOP}/lib/libx.so", tarfile.SYMTYPE, link="libx.so.1"),
        tar_entry(f"{TOP}/share/venv/dynlib/libx.so", tarfile.SYMTYPE, link="../../../lib/libx.so"),
    ]


def inspect(archive: Path, *, top: str = TOP) -> int:
    return inspect_archive(
        archive, size=archive.stat().st_size, sha256=sha256_file(archive), top=top
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_unpacks_the_layer_contents(tmp_path: Path, fmt: str) -> None:
    archive = write_archive(tmp_path / f"{TOP}{fmt}", good_entries())
    assert inspect(archive) == 6
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_archive(archive, dest, sha256=sha256_file(archive), top=TOP)
    # The top folder is stripped: the contents land in ``dest`` itself.
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "bin",
        "bin/tool",
        "lib",
        "lib/libx.so",
        "lib/libx.so.1",
        "share",
        "share/venv",
        "share/venv/dynlib",
        "share/venv/dynlib/libx.so",
    ]
    assert os.access(dest / "bin/tool", os.X_OK)
    assert not os.access(dest / "lib/libx.so.1", os.X_OK)
    assert os.readlink(dest / "lib/libx.so") == "libx.so.1"
    assert (dest / "share/venv/dynlib/libx.so").read_bytes() == b"ELF..."


def test_tar_hard_links_are_relinked_inside_the_layer(tmp_path: Path) -> None:
    entries = [
        *good_entries(),
        tar_entry(f"{TOP}/lib/libcopy.so", tarfile.LNKTYPE, link=f"{TOP}/lib/libx.so.1"),
    ]
    archive = write_archive(tmp_path / f"{TOP}.tar.zst", entries)
    inspect(archive)
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_archive(archive, dest, sha256=sha256_file(archive), top=TOP)
    assert (dest / "lib/libcopy.so").stat().st_ino == (dest / "lib/libx.so.1").stat().st_ino


HOSTILE = {
    "dot-dot": (tar_entry(f"{TOP}/../escaped.txt", data=b"x"), "'..' part"),
    "absolute": (tar_entry("/tmp/escaped.txt", data=b"x"), "absolute path"),
    "escaping-symlink": (
        tar_entry(f"{TOP}/lib/evil", tarfile.SYMTYPE, link="../../outside"),
        "link leaving its layer",
    ),
    "absolute-symlink": (
        tar_entry(f"{TOP}/lib/evil", tarfile.SYMTYPE, link="/etc/passwd"),
        "absolute path",
    ),
    "device": (tar_entry(f"{TOP}/dev-null", tarfile.CHRTYPE), "device file"),
    "second-top-folder": (tar_entry("other/file.txt", data=b"x"), "outside the layer folder"),
}


@pytest.mark.parametrize("fmt", [".tar.zst", ".zip"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_refused_while_scanning(tmp_path: Path, fmt: str, case: str) -> None:
    entry, reason = HOSTILE[case]
    archive = write_archive(tmp_path / f"{TOP}{fmt}", [*good_entries(), entry])
    with pytest.raises(ArchiveRefused, match=reason):
        inspect(archive)


def test_tar_fifo_and_hard_link_escape_are_refused(tmp_path: Path) -> None:
    fifo = write_archive(
        tmp_path / "a.tar.gz", [*good_entries(), tar_entry(f"{TOP}/p", tarfile.FIFOTYPE)]
    )
    with pytest.raises(ArchiveRefused, match="device file or pipe"):
        inspect(fifo)
    hard = write_archive(
        tmp_path / "b.tar.xz",
        [*good_entries(), tar_entry(f"{TOP}/h", tarfile.LNKTYPE, link="/etc/passwd")],
    )
    with pytest.raises(ArchiveRefused, match="hard link leaving"):
        inspect(hard)


def test_the_top_folder_must_be_the_install_target(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "x.tar.zst", good_entries())
    with pytest.raises(ArchiveRefused, match="outside the layer folder 'app-other'"):
        inspect(archive, top="app-other")


def test_an_empty_layer_is_refused(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "x.tar.zst", [tar_entry(TOP, tarfile.DIRTYPE)])
    with pytest.raises(ArchiveRefused, match="nothing in its layer folder"):
        inspect(archive)


@pytest.mark.parametrize("fmt", FORMATS)
def test_size_and_hash_are_checked_first(tmp_path: Path, fmt: str) -> None:
    archive = write_archive(tmp_path / f"{TOP}{fmt}", good_entries())
    size, digest = archive.stat().st_size, sha256_file(archive)
    with pytest.raises(ArchiveRefused, match=f"has {size} bytes, the metadata says {size + 1}"):
        inspect_archive(archive, size=size + 1, sha256=digest, top=TOP)
    with pytest.raises(ArchiveRefused, match="does not match its published sha256"):
        inspect_archive(archive, size=size, sha256="0" * 64, top=TOP)
    # A flipped byte in the middle: reported as a hash mismatch, whatever the reader made of it.
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveRefused, match="does not match its published sha256"):
        inspect_archive(archive, size=size, sha256=digest, top=TOP)


def test_a_truncated_archive_with_matching_metadata_is_unreadable(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / f"{TOP}.tar.zst", good_entries())
    archive.write_bytes(archive.read_bytes()[:-20])
    with pytest.raises(ArchiveRefused, match=r"cannot be read as \.tar\.zst"):
        inspect(archive)


def test_an_archive_changed_after_its_check_is_refused_when_unpacked(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / f"{TOP}.tar.zst", good_entries())
    digest = sha256_file(archive)
    write_archive(archive, [*good_entries(), tar_entry(f"{TOP}/extra", data=b"new")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveRefused, match="changed while it was being unpacked"):
        extract_archive(archive, dest, sha256=digest, top=TOP)


def test_formats_are_chosen_by_extension(tmp_path: Path) -> None:
    assert format_for(tmp_path / "a.b@1.tar.zst").suffix == ".tar.zst"
    assert format_for(tmp_path / "x.zip").suffix == ".zip"
    with pytest.raises(ArchiveRefused, match="unknown archive format"):
        format_for(tmp_path / "x.tar.bz2")
