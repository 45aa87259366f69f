"""Archive writers: reproducible bytes, safe round trips, atomic writes, parallel runs."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.publish.test_archive_helpers import (
    ALL_FORMATS,
    MTIME,
    ROOT,
    SITE,
    TAR_FORMATS,
    extract,
    make_layer,
    tar_members,
)
from venvlayers import layout
from venvlayers.contract.manifest import build_manifest
from venvlayers.errors import PublishError
from venvlayers.publish.archive import (
    FORMATS,
    ArchiveRequest,
    write_layer_archive,
    write_layer_archives,
)
from venvlayers.publish.formats.tar_zst import TarZst


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return make_layer(tmp_path / "build" / "framework-demo", outside=tmp_path / "base")


def publish(layer: Path, dest: Path, fmt: str = "tar.zst") -> Path:
    result = write_layer_archive(layer, dest, root_name=ROOT, fmt=fmt, mtime=MTIME)
    assert result.path == dest
    return dest


def _scramble_metadata(folder: Path) -> None:
    """Other mtimes, modes and (as root) owners: nothing the archive may depend on."""
    for index, path in enumerate(sorted(folder.rglob("*"))):
        if path.is_symlink():
            continue
        os.utime(path, (MTIME + 1000 + index, MTIME - 5000 - index))
        if path.is_file():
            executable = path.stat().st_mode & 0o100
            path.chmod(0o700 if executable else 0o600)
        if os.geteuid() == 0:
            os.chown(path, 1234, 4321)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_same_content_gives_identical_archives(tmp_path: Path, layer: Path, fmt: str) -> None:
    first = write_layer_archive(layer, tmp_path / "a" / "x", root_name=ROOT, fmt=fmt, mtime=MTIME)
    again = write_layer_archive(layer, tmp_path / "b" / "x", root_name=ROOT, fmt=fmt, mtime=MTIME)
    other = make_layer(tmp_path / "elsewhere" / "renamed", outside=tmp_path / "base2")
    _scramble_metadata(other)
    copy = write_layer_archive(other, tmp_path / "c" / "x", root_name=ROOT, fmt=fmt, mtime=MTIME)

    assert first.sha256 == again.sha256 == copy.sha256
    assert first.path.read_bytes() == copy.path.read_bytes()
    assert first.size == copy.path.stat().st_size


def test_archive_mtime_changes_the_bytes(tmp_path: Path, layer: Path) -> None:
    one = write_layer_archive(layer, tmp_path / "1.tar.gz", root_name=ROOT, fmt="tar.gz", mtime=1)
    two = write_layer_archive(layer, tmp_path / "2.tar.gz", root_name=ROOT, fmt="tar.gz", mtime=2)
    assert one.sha256 != two.sha256


def test_result_reports_size_and_hash_of_the_file(tmp_path: Path, layer: Path) -> None:
    import hashlib

    for fmt in ALL_FORMATS:
        result = write_layer_archive(layer, tmp_path / fmt, root_name=ROOT, fmt=fmt, mtime=MTIME)
        data = result.path.read_bytes()
        assert result.size == len(data)
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        assert stat.S_IMODE(result.path.stat().st_mode) == 0o644


@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_tar_members_are_normalised(tmp_path: Path, layer: Path, fmt: str) -> None:
    members = tar_members(publish(layer, tmp_path / f"layer.{fmt}", fmt))
    names = [m.name for m in members]

    assert names[0] == ROOT
    assert all(name == ROOT or name.startswith(f"{ROOT}/") for name in names)
    # Depth first with sorted names; the manifest comes last, after what it describes.
    body = names[1:-1]
    assert body == sorted(body, key=lambda name: name.split("/"))
    assert names[-1] == f"{ROOT}/{layout.LAYER_MANIFEST}"
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == MTIME
        # Hard links are stored as plain files; nothing else but folders and symlinks.
        assert member.isdir() or member.isreg() or member.issym(), member.name
        if member.issym():
            assert member.mode == 0o777
        else:
            assert member.mode in (0o755, 0o644)
    modes = {m.name.removeprefix(f"{ROOT}/"): m.mode for m in members}
    assert modes["bin/tool"] == 0o755
    assert modes[f"{SITE}/pkg/shared.txt"] == 0o644  # was 0o664
    assert modes[f"{SITE}/pkg/libdemo.so"] == 0o755
    assert modes["include"] == 0o755
    assert modes[f"{SITE}/pkg/hardlinked.py"] == 0o644


@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_tar_round_trip_with_data_filter(tmp_path: Path, layer: Path, fmt: str) -> None:
    expected = build_manifest(layer)
    unpacked = extract(publish(layer, tmp_path / f"layer.{fmt}", fmt), tmp_path / "out")

    for path in (layer / SITE / "pkg").rglob("*"):
        relative = path.relative_to(layer).as_posix()
        if "__pycache__" in relative or relative.endswith(".pyc"):
            assert not (unpacked / relative).exists()
        elif path.is_file():
            assert (unpacked / relative).read_bytes() == path.read_bytes()
    assert os.access(unpacked / "bin" / "tool", os.X_OK)
    assert not os.access(unpacked / layout.LAYER_METADATA, os.X_OK)
    assert os.readlink(unpacked / "bin" / "python3") == "python"
    assert os.readlink(unpacked / "lib64") == "lib"
    dynlib_link = unpacked / layout.DYNLIB_DIR / "libdemo.so"
    assert os.readlink(dynlib_link) == f"../../../{SITE}/pkg/libdemo.so"
    assert dynlib_link.read_bytes() == (layer / SITE / "pkg" / "libdemo.so").read_bytes()
    assert (unpacked / "include").is_dir()
    assert (unpacked / layout.POSTINSTALL_SCRIPT).is_file()
    assert (unpacked / SITE / "pkg" / "nested" / "pyvenv.cfg").is_file()
    assert (unpacked / SITE / "pkg" / "données" / "café.txt").read_text() == "non-ASCII name\n"
    assert len(next((unpacked / SITE).rglob("long_name_*")).as_posix()) > 200
    for absent in ("pyvenv.cfg", "bin/python", "bin/python3.11"):
        assert not os.path.lexists(unpacked / absent), absent
    assert json.loads((unpacked / layout.LAYER_MANIFEST).read_text()) == expected


def test_zip_round_trip(tmp_path: Path, layer: Path) -> None:
    archive = publish(layer, tmp_path / "layer.zip", "zip")
    unpacked = extract(archive, tmp_path / "out")
    with zipfile.ZipFile(archive) as zipped:
        infos = {info.filename.removeprefix(f"{ROOT}/"): info for info in zipped.infolist()}
        link = infos["lib64"]
        assert zipped.read(link) == b"lib"

    assert all(info.date_time == (2023, 11, 14, 22, 13, 20) for info in infos.values())
    mode = {name: info.external_attr >> 16 for name, info in infos.items()}
    assert mode["bin/tool"] == stat.S_IFREG | 0o755
    assert mode[f"{SITE}/pkg/shared.txt"] == stat.S_IFREG | 0o644
    assert mode["lib64"] == stat.S_IFLNK | 0o777
    assert mode["include/"] == stat.S_IFDIR | 0o755
    assert infos["bin/python3"].compress_type == zipfile.ZIP_STORED
    assert "pyvenv.cfg" not in infos and "bin/python" not in infos
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in infos)
    data = layer / SITE / "pkg" / "data.bin"
    assert (unpacked / SITE / "pkg" / "data.bin").read_bytes() == data.read_bytes()
    manifest = json.loads((unpacked / layout.LAYER_MANIFEST).read_text())
    assert manifest == build_manifest(layer)


def test_gzip_header_has_no_time_or_name(tmp_path: Path, layer: Path) -> None:
    header = publish(layer, tmp_path / "layer.tar.gz", "tar.gz").read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0  # FNAME flag
    assert header[4:8] == b"\0\0\0\0"  # MTIME


def test_zstd_output_does_not_depend_on_thread_count(tmp_path: Path) -> None:
    # Level 1 cuts 2 MiB jobs, so 8 MiB of input really spreads over several workers.
    folder = tmp_path / "big"
    folder.mkdir()
    for index in range(4):
        chunk = (f"line {index} ".encode() * 50_000) + os.urandom(1 << 20)
        (folder / f"part{index}.bin").write_bytes(chunk)
    hashes = {
        threads: write_layer_archive(
            folder,
            tmp_path / f"t{threads}.tar.zst",
            root_name=ROOT,
            fmt=TarZst(level=1, threads=threads),
            mtime=MTIME,
        ).sha256
        for threads in (1, 2, 4)
    }
    assert len(set(hashes.values())) == 1, hashes


def test_default_zstd_frame_settings(tmp_path: Path, layer: Path) -> None:
    import zstandard

    data = publish(layer, tmp_path / "layer.tar.zst").read_bytes()
    frame = zstandard.get_frame_parameters(data)
    assert frame.has_checksum
    assert frame.content_size == zstandard.CONTENTSIZE_UNKNOWN
    # Readable by any zstd decoder without raising its window limit (2**27).
    assert frame.window_size <= 1 << 27
    assert FORMATS["tar.zst"] == TarZst()


def test_progress_counts_every_published_byte(tmp_path: Path, layer: Path) -> None:
    seen: list[int] = []
    write_layer_archive(
        layer, tmp_path / "l.tar.zst", root_name=ROOT, mtime=MTIME, progress=seen.append
    )
    manifest = build_manifest(layer)
    assert sum(seen) == sum(e["size"] for e in manifest["entries"] if e["type"] == "file")
    assert all(count > 0 for count in seen)


def test_layer_folder_is_not_modified(tmp_path: Path, layer: Path) -> None:
    stale = layer / layout.LAYER_MANIFEST
    stale.write_text('{"stale": true}\n')
    before = sorted((p, p.lstat().st_mtime_ns) for p in layer.rglob("*"))
    unpacked = extract(publish(layer, tmp_path / "l.tar.gz", "tar.gz"), tmp_path / "out")

    assert sorted((p, p.lstat().st_mtime_ns) for p in layer.rglob("*")) == before
    assert stale.read_text() == '{"stale": true}\n'
    assert "stale" not in json.loads((unpacked / layout.LAYER_MANIFEST).read_text())


def test_parallel_archives_match_single_ones(tmp_path: Path) -> None:
    layers = [
        make_layer(tmp_path / "build" / f"layer{n}", outside=tmp_path / "base", seed=n)
        for n in range(3)
    ]
    requests = [
        ArchiveRequest(folder, tmp_path / "out" / f"{folder.name}.{fmt}", ROOT, MTIME, fmt)
        for folder, fmt in zip(layers, ("tar.zst", "tar.gz", "zip"), strict=True)
    ]
    totals: dict[str, int] = {}
    done: dict[str, int] = {}

    def factory(label: str, total: int) -> Callable[[int], None]:
        key = f"{label}#{len(totals)}"
        totals[key] = total
        done[key] = 0
        return lambda count: done.__setitem__(key, done[key] + count)

    results = write_layer_archives(requests, jobs=3, progress=factory)

    assert [r.path for r in results] == [r.dest for r in requests]
    for request, result in zip(requests, results, strict=True):
        single = write_layer_archive(
            request.layer_dir,
            tmp_path / "single" / request.dest.name,
            root_name=ROOT,
            fmt=request.fmt,
            mtime=MTIME,
        )
        assert single.sha256 == result.sha256
    assert done == totals and all(total > 1 << 20 for total in totals.values())


def test_request_errors_stop_before_writing(tmp_path: Path, layer: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(PublishError, match="unknown archive format 'rar'"):
        write_layer_archives([ArchiveRequest(layer, out / "a", ROOT, MTIME, "rar")])
    same = [
        ArchiveRequest(layer, out / "a", ROOT, MTIME),
        ArchiveRequest(layer, out / "a", ROOT, 1),
    ]
    with pytest.raises(PublishError, match="same file"):
        write_layer_archives(same)
    with pytest.raises(PublishError, match="one plain folder name"):
        write_layer_archive(layer, out / "b", root_name="a/b", mtime=MTIME)
    assert not out.exists() or not any(out.iterdir())


def test_rich_progress_shows_one_bar_per_layer(tmp_path: Path, layer: Path) -> None:
    import io
    import re

    from rich.console import Console

    from venvlayers.publish.progress import archive_progress

    with archive_progress(enabled=False) as none:
        assert none is None
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    request = ArchiveRequest(layer, tmp_path / "l.tar.zst", ROOT, MTIME)
    with archive_progress(enabled=True, console=console) as factory:
        assert factory is not None
        write_layer_archives([request], progress=factory)
    assert ROOT in screen.getvalue()
    assert re.search(r"(\d+\.\d) ?/ ?\1 MB", screen.getvalue()), "bar did not reach its total"


def test_one_failure_stops_the_other_archives(tmp_path: Path, layer: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for index in range(8):  # long enough to still be compressing when the small one fails
        (big / f"part{index}.txt").write_bytes(b"%d compressible line\n" % index * 200_000)
    requests = [
        ArchiveRequest(big, tmp_path / "out" / "big.tar.gz", ROOT, MTIME, "tar.gz"),
        ArchiveRequest(layer, tmp_path / "out" / "small.tar.gz", ROOT, MTIME, "tar.gz"),
    ]

    def factory(label: str, total: int) -> Callable[[int], None]:
        def advance(count: int) -> None:
            if total < 10 << 20:
                raise OSError("disk full")  # the small layer fails at its first report

        return advance

    with pytest.raises(OSError, match="disk full"):
        write_layer_archives(requests, jobs=2, progress=factory)
    assert list((tmp_path / "out").iterdir()) == []  # no archive, no temporary file
