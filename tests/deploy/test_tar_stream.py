"""TarStream reads every tar stream the way tarfile's stream mode reads it, bounded.

Archives are written by tarfile (or crafted block by block where tarfile cannot write what
is wanted) and read twice: by ``tarfile.open(mode="r|")`` and by :class:`TarStream` over a
stream that hands out pieces of varying, often tiny, sizes. Names, kinds, sizes, link
texts, execute bits, mtimes and file data must agree; every byte must be announced to
``room`` before it is read.
"""

from __future__ import annotations

import io
import itertools
import random
import tarfile
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.deploy.deploy_support import Entry
from venvlayers.deploy.archive_io import HEADER_ALLOWANCE, MAX_LINK_TEXT
from venvlayers.deploy.members import Member, MemberKind
from venvlayers.deploy.tar_stream import TarHeaderTooLarge, TarStream

BLOCK = tarfile.BLOCKSIZE
END = b"\0" * (2 * BLOCK)
FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
# Piece sizes the stream hands out, in turn: tiny ones and ones just off the block size.
MIXED = (1, 7, 512, 3, 1 << 16, 511, 513, 2, 1024, 5)
PIECES = {
    "mixed": MIXED,
    "odd": (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987),
    "blocks": (BLOCK,),
    "whole": (1 << 30,),
}
MTIME = 1_700_000_000


def pattern(size: int, seed: int = 0) -> bytes:
    return random.Random(f"{seed}-{size}").randbytes(size)


BIG = pattern(3 << 20 | 123)


# --- the stream TarStream reads ---------------------------------------------------------------


class Refused(Exception):
    pass


class Source:
    """``chunks`` and ``room`` for a TarStream over ``data``.

    ``read_view`` hands out pieces of the sizes ``pieces`` in turn and counts what it handed
    out; asking for more than ``room`` was told of fails the test. ``room`` records each
    count with how much had been read when it came, and refuses counts over ``refuse_over``.
    """

    def __init__(
        self, data: bytes, pieces: Sequence[int] = MIXED, refuse_over: int | None = None
    ) -> None:
        self._data = memoryview(data)
        self._pieces = itertools.cycle(pieces)
        self._refuse_over = refuse_over
        self.read = 0
        self.granted = 0
        self.rooms: list[tuple[int, int]] = []

    def room(self, count: int) -> None:
        self.rooms.append((count, self.read))
        if self._refuse_over is not None and count > self._refuse_over:
            raise Refused(count)
        self.granted += count

    def read_view(self, size: int) -> memoryview:
        assert size > 0
        assert self.read + size <= self.granted, (
            f"asked for {size} bytes at {self.read}; room was told of {self.granted}"
        )
        view = self._data[self.read : self.read + min(size, next(self._pieces))]
        self.read += len(view)
        return view


# --- what each reader makes of a stream -------------------------------------------------------


@dataclass(frozen=True)
class Read:
    member: Member
    mtime: float
    x_bits: int
    # Regular files whose data was read: the data.
    data: bytes | None = None


def _kind(info: tarfile.TarInfo) -> MemberKind:
    if info.isdir():
        return MemberKind.DIR
    if info.issym():
        return MemberKind.SYMLINK
    if info.islnk():
        return MemberKind.HARDLINK
    if info.isreg():
        return MemberKind.FILE
    return MemberKind.SPECIAL


def tarfile_reads(data: bytes, skip: Container[int] = ()) -> list[Read]:
    """What tarfile's stream mode reads, as TarStream should report it."""
    reads = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|", encoding="utf-8") as tar:
        for index, info in enumerate(tar):
            kind = _kind(info)
            content = None
            if kind is MemberKind.FILE:
                member = Member(info.name, kind, size=info.size, executable=bool(info.mode & 0o111))
                if index not in skip:
                    extracted = tar.extractfile(info)
                    assert extracted is not None
                    content = extracted.read()
            elif kind in (MemberKind.SYMLINK, MemberKind.HARDLINK):
                member = Member(info.name, kind, link=info.linkname)
            else:
                member = Member(info.name, kind)
            reads.append(Read(member, info.mtime, info.mode & 0o111, content))
    return reads


def stream_reads(
    data: bytes, pieces: Sequence[int] = MIXED, skip: Container[int] = ()
) -> list[Read]:
    """What TarStream reads; the data of the files at ``skip`` is left unread."""
    source = Source(data, pieces)
    stream = TarStream(source, source.room)
    reads = []
    for index, found in enumerate(stream.members()):
        content = None
        if found.member.kind is MemberKind.FILE and index not in skip:
            views = list(stream.data(found.member.size))
            assert all(isinstance(view, memoryview) and len(view) for view in views)
            content = b"".join(views)
        reads.append(Read(found.member, found.mtime, found.mode & 0o111, content))
    return reads


def outcome(read: list[Read] | BaseException) -> object:
    return type(read) if isinstance(read, BaseException) else read


def both(data: bytes, pieces: Sequence[int] = MIXED) -> tuple[object, object]:
    """(tarfile's reading, TarStream's reading), an exception standing as its type."""
    results: list[object] = []
    for reader in (tarfile_reads, lambda d: stream_reads(d, pieces)):
        try:
            results.append(reader(data))
        except Exception as exc:
            results.append(type(exc))
    return results[0], results[1]


# --- writing archives -------------------------------------------------------------------------


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    link: str = "",
    mtime: float = MTIME,
) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data)
    info.mode = mode
    info.linkname = link
    info.mtime = mtime
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, data


def archive(
    entries: Sequence[Entry], fmt: int, pax_headers: Mapping[str, str] | None = None
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=fmt, encoding="utf-8", pax_headers=pax_headers
    ) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def raw(item: Entry) -> bytes:
    """One member's blocks as tarfile writes them in GNU format: header(s), data, padding."""
    info, data = item
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape") + padded(data)


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(
    records: Mapping[str, str] | None = None,
    kind: bytes = tarfile.XHDTYPE,
    payload: bytes | None = None,
) -> bytes:
    """A pax header (local, or global with ``kind=XGLTYPE``) and its record block."""
    if payload is None:
        payload = b"".join(pax_record(key, value) for key, value in (records or {}).items())
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = kind
    info.size = len(payload)
    return info.tobuf(tarfile.USTAR_FORMAT) + padded(payload)


def gnu_long(text: str | bytes, kind: bytes = tarfile.GNUTYPE_LONGNAME) -> bytes:
    payload = (text.encode() if isinstance(text, str) else text) + b"\0"
    info = tarfile.TarInfo("././@LongLink")
    info.type = kind
    info.size = len(payload)
    return info.tobuf(tarfile.USTAR_FORMAT) + padded(payload)


def checksummed(block: bytes | bytearray) -> bytes:
    buf = bytearray(block)
    buf[148:156] = b" " * 8
    buf[148:155] = b"%06o\0" % sum(buf)
    return bytes(buf)


def renamed(header: bytes, name: bytes) -> bytes:
    """``header`` (one block) with the name field ``name``, checksum made right."""
    buf = bytearray(header)
    buf[0:100] = name.ljust(100, b"\0")
    return checksummed(buf)


# --- 1. what tarfile writes, in each format ---------------------------------------------------


def every_kind(fmt: int) -> list[Entry]:
    entries = [
        entry("top", tarfile.DIRTYPE, mode=0o755),
        entry("top/slash/", tarfile.DIRTYPE, mode=0o755),
        entry("top/empty"),
        entry("top/one", data=b"x"),
        entry("top/b511", data=pattern(511)),
        entry("top/b512", data=pattern(512)),
        entry("top/b513", data=pattern(513)),
        entry("top/big", data=BIG, mode=0o755),
        entry("top/owner-x", data=b"#!", mode=0o100),
        entry("top/other-x", data=b"#!", mode=0o001),
        entry("top/link", tarfile.SYMTYPE, link="one", mode=0o777),
        entry("top/hard", tarfile.LNKTYPE, link="top/one"),
        entry("top/fifo", tarfile.FIFOTYPE),
        entry("top/chr", tarfile.CHRTYPE),
        entry("top/blk", tarfile.BLKTYPE),
        entry("top/ünïcødé-名前", data="ü".encode()),
        entry("top/ünïcødé-dir", tarfile.DIRTYPE),
        entry("top/ünïcødé-link", tarfile.SYMTYPE, link="ünïcødé-名前"),
        # Over 100 bytes, split into the ustar prefix and name.
        entry("top/" + "p" * 60 + "/" + "q" * 80, data=b"prefixed"),
        entry("top/zero-mtime", data=b"z", mtime=0),
        entry("top/last", data=b"the end"),
    ]
    if fmt == tarfile.USTAR_FORMAT:
        return entries
    long_name = "top/" + "n" * 150
    longer = "top/" + "/".join(["m" * 99] * 3)
    entries[-1:-1] = [
        entry(long_name, data=pattern(700)),
        entry(longer, data=pattern(100), mode=0o700),
        entry("top/" + "D" * 130, tarfile.DIRTYPE),
        entry("top/" + "é" * 80, data=b"e"),
        entry("top/long-link", tarfile.SYMTYPE, link="../" + "t" * 150),
        entry("top/long-hard", tarfile.LNKTYPE, link=longer),
        entry("top/" + "h" * 120, tarfile.LNKTYPE, link=long_name),
        entry("top/" + "s" * 300, tarfile.SYMTYPE, link="ü" * 200),
        entry("top/old", data=b"o", mtime=-86_400),
        entry("top/far", data=b"f", mtime=8**11 + 5),
        entry("top/fraction", data=b"f", mtime=MTIME + 0.75),
    ]
    return entries


@pytest.mark.parametrize("pieces", PIECES.values(), ids=PIECES)
@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS)
def test_reads_what_tarfile_writes_as_tarfile_reads_it(fmt: int, pieces: Sequence[int]) -> None:
    entries = every_kind(fmt)
    data = archive(entries, fmt)
    expected = tarfile_reads(data)
    # tarfile read back what was written (so the comparison below means something).
    assert [read.member.name for read in expected] == [info.name.rstrip("/") for info, _ in entries]
    assert stream_reads(data, pieces) == expected


def test_kinds_links_and_bits_come_out_as_written() -> None:
    reads = {
        read.member.name: read
        for read in stream_reads(archive(every_kind(tarfile.PAX_FORMAT), tarfile.PAX_FORMAT))
    }
    assert reads["top"].member == Member("top", MemberKind.DIR)
    assert reads["top/slash"].member == Member("top/slash", MemberKind.DIR)
    assert reads["top/big"].member == Member("top/big", MemberKind.FILE, len(BIG), "", True)
    assert reads["top/big"].data == BIG
    assert reads["top/owner-x"].member.executable
    assert reads["top/other-x"].member.executable
    assert not reads["top/one"].member.executable
    assert reads["top/link"].member == Member("top/link", MemberKind.SYMLINK, link="one")
    assert reads["top/hard"].member == Member("top/hard", MemberKind.HARDLINK, link="top/one")
    for special in ("top/fifo", "top/chr", "top/blk"):
        assert reads[special].member.kind is MemberKind.SPECIAL
    assert reads["top/long-link"].member.link == "../" + "t" * 150
    assert reads["top/old"].mtime == -86_400
    assert reads["top/fraction"].mtime == MTIME + 0.75


def test_folders_and_files_spelt_every_way() -> None:
    # A folder with no trailing slash, a V7 folder (an old-style regular file whose name
    # ends in "/"), a contiguous file, and a member of a type nobody knows (data skipped).
    no_slash = renamed(raw(entry("dir", tarfile.DIRTYPE))[:BLOCK], b"dir")
    v7_folder = raw(entry("v7/", tarfile.AREGTYPE))
    contiguous = raw(entry("contiguous", tarfile.CONTTYPE, pattern(600)))
    unknown = raw(entry("unknown", b"Z", pattern(700)))
    data = no_slash + v7_folder + contiguous + unknown + raw(entry("after", data=b"a")) + END
    expected = tarfile_reads(data)
    assert [(read.member.name, read.member.kind) for read in expected] == [
        ("dir", MemberKind.DIR),
        ("v7", MemberKind.DIR),
        ("contiguous", MemberKind.FILE),
        ("unknown", MemberKind.SPECIAL),
        ("after", MemberKind.FILE),
    ]
    for pieces in PIECES.values():
        assert stream_reads(data, pieces) == expected


# --- 2. pax global headers --------------------------------------------------------------------


def test_a_pax_global_header_applies_to_the_members_after_it() -> None:
    entries = [
        entry("short", data=b"s"),
        entry("ünïcødé", data=b"u"),
        entry("l" * 150),
        entry("fraction", mtime=MTIME + 0.5),
        entry("dir", tarfile.DIRTYPE),
    ]
    headers = {"mtime": "1234.5", "comment": "ü"}
    data = archive(entries, tarfile.PAX_FORMAT, pax_headers=headers)
    expected = tarfile_reads(data)
    # Mtimes the members' own headers do not set come from the global header.
    assert [(read.member.name, read.mtime) for read in expected] == [
        ("short", 1234.5),
        ("ünïcødé", 1234.5),
        ("l" * 150, 1234.5),
        ("fraction", MTIME + 0.5),
        ("dir", 1234.5),
    ]
    for pieces in PIECES.values():
        assert stream_reads(data, pieces) == expected


@pytest.mark.parametrize("key", ["path", "linkpath", "size"])
def test_a_pax_global_header_setting_a_name_or_size_is_refused(key: str) -> None:
    # Every later member would get one name, link or size; tarfile even finds the next
    # header by the member's own size while giving it the global one, so a header hidden
    # in a member's data would be a member for one reader and not for the other.
    hidden = raw(entry("smuggled", data=b"evil"))
    data = pax({key: "3"}, tarfile.XGLTYPE) + raw(entry("h", data=pattern(509) + hidden))
    data += raw(entry("i")) + END
    with pytest.raises(tarfile.ReadError, match=f"a global pax header sets '{key}'"):
        stream_reads(data)


def test_later_pax_global_headers_add_to_earlier_ones() -> None:
    data = (
        pax({"mtime": "100"}, tarfile.XGLTYPE)
        + raw(entry("a", data=b"a"))
        + pax({"mtime": "200", "comment": "second"}, tarfile.XGLTYPE)
        + raw(entry("b", data=b"b"))
        + raw(entry("s", tarfile.SYMTYPE, link="own"))
        + pax({"path": "local", "mtime": "300"})
        + raw(entry("c", data=b"c"))
        + raw(entry("d"))
        + END
    )
    expected = tarfile_reads(data)
    assert [(read.member.name, read.mtime) for read in expected] == [
        ("a", 100),
        ("b", 200),
        ("s", 200),
        ("local", 300),
        ("d", 200),
    ]
    assert expected[2].member.link == "own"
    assert stream_reads(data) == expected


# --- crafted header sequences: the order in which headers apply -------------------------------

HEADER_SEQUENCES = {
    "pax path then GNU long name": pax({"path": "pax"}) + gnu_long("gnu") + raw(entry("h")),
    "pax path and global mtime": pax({"mtime": "5"}, tarfile.XGLTYPE)
    + raw(entry("h"))
    + pax({"path": "local"})
    + raw(entry("i")),
    "pax linkpath": pax({"linkpath": "pax-target"}) + raw(entry("s", tarfile.SYMTYPE, link="x")),
    "GNU long link": gnu_long("gnu-target", tarfile.GNUTYPE_LONGLINK)
    + raw(entry("s", tarfile.SYMTYPE, link="x")),
    "GNU long name and long link": gnu_long("name")
    + gnu_long("target", tarfile.GNUTYPE_LONGLINK)
    + raw(entry("h", tarfile.LNKTYPE, link="x")),
    "pax size over the header's": pax({"size": "1000"}) + raw(entry("h")) + padded(pattern(1000)),
    "pax size under the header's": pax({"size": "10"})
    + raw(entry("h", data=pattern(1000)))[:BLOCK]
    + padded(pattern(10)),
    "pax size on a folder": pax({"size": "5000"}) + raw(entry("d", tarfile.DIRTYPE)),
    "pax hdrcharset BINARY": pax(payload=b"21 hdrcharset=BINARY\n11 path=\xff\xfe\n")
    + raw(entry("h")),
    "pax record with '=' and newline in its value": pax({"path": "a=b\nc"}) + raw(entry("h")),
    "Solaris pax header": pax({"path": "solaris"}, tarfile.SOLARIS_XHDTYPE) + raw(entry("h")),
    "non-UTF-8 name in the header": renamed(raw(entry("h"))[:BLOCK], b"caf\xe9"),
}


# Header sequences no tool writes but a hostile archive may hold, read as tarfile reads them.
HOSTILE_SEQUENCES = {
    # The first extended header before a member (outermost) wins, whatever its kind.
    "GNU long name then pax path": gnu_long("gnu") + pax({"path": "pax"}) + raw(entry("h")),
    "two pax headers": pax({"path": "first"}) + pax({"path": "second"}) + raw(entry("h")),
    "two GNU long names": gnu_long("first") + gnu_long("second") + raw(entry("h")),
    # tarfile strips the trailing slashes of every pax path.
    "pax path of a file with a trailing slash": pax({"path": "a/b/"}) + raw(entry("h")),
    # tarfile ends a GNU long name at its first NUL.
    "GNU long name with a NUL": gnu_long(b"a\0b") + raw(entry("h")),
    # tarfile takes one trailing slash off a GNU long folder name.
    "GNU long folder name with two slashes": gnu_long("dd//") + raw(entry("dd", tarfile.DIRTYPE)),
}


@pytest.mark.parametrize(
    "blocks",
    [*HEADER_SEQUENCES.values(), *HOSTILE_SEQUENCES.values()],
    ids=[*HEADER_SEQUENCES, *HOSTILE_SEQUENCES],
)
def test_header_sequences_are_read_as_tarfile_reads_them(blocks: bytes) -> None:
    data = blocks + raw(entry("after", data=b"after")) + END
    expected = tarfile_reads(data)
    for pieces in PIECES.values():
        assert stream_reads(data, pieces) == expected
        assert stream_reads(data, pieces, skip=range(10)) == tarfile_reads(data, range(10))


# --- 3. skipping data -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS)
def test_members_left_unread_are_skipped_to_the_next_header(fmt: int) -> None:
    data = archive(every_kind(fmt), fmt)
    expected = tarfile_reads(data)
    count = len(expected)
    for skip in (range(count), range(0, count, 2), range(1, count, 2)):
        assert stream_reads(data, PIECES["odd"], skip=set(skip)) == tarfile_reads(data, set(skip))


def test_data_read_in_part_is_skipped_to_the_next_header() -> None:
    data = archive(every_kind(tarfile.GNU_FORMAT), tarfile.GNU_FORMAT)
    source = Source(data, (1, 700, 3))
    stream = TarStream(source, source.room)
    names = []
    for found in stream.members():
        names.append(found.member.name)
        if found.member.kind is MemberKind.FILE and found.member.size:
            # The first piece only: the rest is left to skip.
            assert bytes(next(stream.data(found.member.size)))
    assert names == [read.member.name for read in tarfile_reads(data)]


def test_data_must_be_asked_for_with_the_member_size() -> None:
    data = raw(entry("a", data=pattern(10))) + END
    source = Source(data)
    stream = TarStream(source, source.room)
    members = stream.members()
    next(members)
    with pytest.raises(tarfile.ReadError):
        list(stream.data(5))


# --- 4. where the archive ends ----------------------------------------------------------------

MEMBERS = raw(entry("a", data=pattern(1000))) + raw(entry("d", tarfile.DIRTYPE))
MEMBERS += raw(entry("b", data=pattern(512)))


@pytest.mark.parametrize(
    "data",
    [
        MEMBERS,
        MEMBERS + END,
        MEMBERS + END[:BLOCK],
        MEMBERS + END + b"trailing garbage" * 1000,
        MEMBERS + END + raw(entry("after-the-end", data=b"x")) + END,
        MEMBERS + b"\0" * BLOCK + b"garbage" * 100,
        END,
        END + b"garbage",
        archive([], tarfile.GNU_FORMAT),
    ],
    ids=[
        "no end blocks",
        "end blocks",
        "one end block",
        "garbage after the end blocks",
        "a member after the end blocks",
        "garbage after one end block",
        "only end blocks",
        "garbage after only end blocks",
        "tarfile's empty archive",
    ],
)
def test_the_archive_ends_where_tarfile_ends_it(data: bytes) -> None:
    expected = tarfile_reads(data)
    for pieces in PIECES.values():
        assert stream_reads(data, pieces) == expected


def test_nothing_after_the_first_end_block_is_read() -> None:
    source = Source(MEMBERS + END + b"garbage" * 100)
    stream = TarStream(source, source.room)
    assert len(list(stream.members())) == 3
    assert source.read == len(MEMBERS) + BLOCK


def bad_checksum(block: bytes) -> bytes:
    header = bytearray(block[:BLOCK])
    header[0] ^= 1
    return bytes(header) + block[BLOCK:]


def test_a_bad_checksum_after_members_ends_the_archive() -> None:
    data = MEMBERS + bad_checksum(raw(entry("c", data=b"c"))) + END
    expected = tarfile_reads(data)
    assert [read.member.name for read in expected] == ["a", "d", "b"]
    for pieces in PIECES.values():
        assert stream_reads(data, pieces) == expected


A_FILE = raw(entry("a", data=pattern(1000)))
A_PAX = pax({"path": "p" * 300, "comment": "c" * 600})
A_LONG = gnu_long("g" * 700)

DAMAGED = {
    "empty stream": b"",
    "bad checksum first": bad_checksum(MEMBERS) + END,
    "bad checksum on a first pax header": bad_checksum(A_PAX) + MEMBERS + END,
    "half a first header": MEMBERS[:300],
    "cut in the data": A_FILE[: BLOCK + 600],
    "cut at the end of the data": A_FILE[: BLOCK + 1000],
    "cut in the padding": A_FILE[: BLOCK + 1010],
    "cut in the data of a later member": MEMBERS + A_FILE[: BLOCK + 1],
    "cut in pax records": MEMBERS + A_PAX[: BLOCK + 700],
    "cut after pax records": MEMBERS + A_PAX,
    "pax header then end blocks": MEMBERS + A_PAX + END,
    "cut in a GNU long name": MEMBERS + A_LONG[: BLOCK + 100],
    "GNU long name then end blocks": MEMBERS + A_LONG + END,
    "bad checksum after a pax header": MEMBERS + A_PAX + bad_checksum(A_FILE) + END,
    "bad checksum after a GNU long name": MEMBERS + A_LONG + bad_checksum(A_FILE) + END,
    "pax record of length 0": pax(payload=b"0 path=x\n") + A_FILE + END,
    # Diverges: tarfile refuses a global header with no member after it.
    "global pax header then end blocks": MEMBERS + pax({"comment": "c"}, tarfile.XGLTYPE) + END,
}


@pytest.mark.parametrize("data", DAMAGED.values(), ids=DAMAGED)
def test_damaged_streams_are_refused_as_tarfile_refuses_them(data: bytes) -> None:
    with pytest.raises(tarfile.ReadError):
        tarfile_reads(data)
    for pieces in PIECES.values():
        with pytest.raises(tarfile.ReadError):
            stream_reads(data, pieces)
        with pytest.raises(tarfile.ReadError):
            stream_reads(data, pieces, skip=range(10))


def test_a_symlink_to_a_path_no_file_system_takes_is_refused() -> None:
    data = pax({"linkpath": "x" * (MAX_LINK_TEXT + 1)}) + raw(entry("s", tarfile.SYMTYPE)) + END
    with pytest.raises(tarfile.ReadError, match="symlink"):
        stream_reads(data)
    fits = pax({"linkpath": "x" * MAX_LINK_TEXT}) + raw(entry("s", tarfile.SYMTYPE)) + END
    assert stream_reads(fits) == tarfile_reads(fits)


@pytest.mark.parametrize(
    "payload",
    [pax_record("size", "²"), pax_record("mtime", "1e999999x"), b"9" * 5000 + b" path=x\n"],
    ids=["superscript digit size", "bad mtime", "length of 5000 digits"],
)
def test_malformed_pax_numbers_raise_read_error(payload: bytes) -> None:
    # Two of these fail with ValueError, not ReadError: "²".isdigit() is true but int()
    # refuses it (tarfile reads the size as 0), and a record length of more than 4300
    # digits trips int()'s digit limit (in tarfile too).
    data = pax(payload=payload) + A_FILE + END
    with pytest.raises(tarfile.ReadError):
        stream_reads(data)


# --- 5. bounds --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_header_over_the_allowance_is_refused_before_its_data_is_read(kind: bytes) -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = kind
    info.size = HEADER_ALLOWANCE + 1
    data = MEMBERS + info.tobuf(tarfile.USTAR_FORMAT) + b"x" * (HEADER_ALLOWANCE + BLOCK)
    source = Source(data)
    stream = TarStream(source, source.room)
    with pytest.raises(TarHeaderTooLarge):
        list(stream.members())
    assert source.read == len(MEMBERS) + BLOCK


def test_headers_of_one_member_count_together_against_the_allowance() -> None:
    half = pax({"comment": "c" * (HEADER_ALLOWANCE // 2)})
    data = half + half + raw(entry("a")) + END
    source = Source(data)
    stream = TarStream(source, source.room)
    with pytest.raises(TarHeaderTooLarge):
        list(stream.members())
    assert source.read == len(half) + BLOCK


def test_a_header_of_exactly_the_allowance_is_read() -> None:
    record = pax_record("comment", "c" * (HEADER_ALLOWANCE - 17))
    assert len(record) == HEADER_ALLOWANCE
    data = pax(payload=record) + raw(entry("a", data=b"a")) + END
    assert stream_reads(data, PIECES["whole"]) == tarfile_reads(data)


def huge_header() -> bytes:
    """A regular file claiming 1 << 50 bytes of data, in a base-256 size field."""
    info = tarfile.TarInfo("huge")
    info.size = 1 << 50
    return info.tobuf(tarfile.GNU_FORMAT)


@pytest.mark.parametrize(
    "header",
    [huge_header(), pax({"size": str(1 << 50)}) + raw(entry("huge"))],
    ids=["base-256 size", "pax size"],
)
def test_room_is_told_of_member_data_before_any_of_it_is_read(header: bytes) -> None:
    data = MEMBERS + header + b"x" * (1 << 16)
    source = Source(data, refuse_over=1 << 40)
    stream = TarStream(source, source.room)
    with pytest.raises(Refused):
        for found in stream.members():
            if found.member.kind is MemberKind.FILE:
                for _ in stream.data(found.member.size):
                    pass
    assert source.rooms[-1] == (1 << 50, len(MEMBERS) + len(header))
    assert source.read == len(MEMBERS) + len(header)


def test_room_is_told_of_every_block_before_it_is_read() -> None:
    pax_header = pax({"path": "p" * 200})
    data = pax_header + raw(entry("a", data=pattern(1000))) + raw(entry("d", tarfile.DIRTYPE))
    data += END
    source = Source(data)
    stream = TarStream(source, source.room)
    for found in stream.members():
        if found.member.kind is MemberKind.FILE:
            assert source.rooms[-1] == (1024, len(pax_header) + BLOCK)
            assert source.read == len(pax_header) + BLOCK
            b"".join(stream.data(found.member.size))
    at = len(pax_header)
    assert [room for room in source.rooms if room[0]] == [
        (BLOCK, 0),
        (BLOCK, BLOCK),  # the pax records, before they are read
        (BLOCK, at),
        (1024, at + BLOCK),  # the file's data with its padding
        (BLOCK, at + 3 * BLOCK),
        (BLOCK, at + 4 * BLOCK),  # the end block
    ]
    assert source.read == source.granted == len(data) - BLOCK


# --- 6. sparse files --------------------------------------------------------------------------


def test_a_gnu_sparse_member_is_refused() -> None:
    info = tarfile.TarInfo("sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    data = MEMBERS + info.tobuf(tarfile.GNU_FORMAT) + raw(entry("after")) + END
    # tarfile reads it (as a file of its original size, 0 here)...
    assert [read.member.name for read in tarfile_reads(data)] == ["a", "d", "b", "sparse", "after"]
    # ... TarStream refuses it: its map may run on in blocks of its own.
    for pieces in PIECES.values():
        with pytest.raises(tarfile.ReadError, match="sparse"):
            stream_reads(data, pieces)


PAX_SPARSE = {
    "0.0": (
        {
            "GNU.sparse.size": "3000",
            "GNU.sparse.numblocks": "1",
            "GNU.sparse.offset": "2000",
            "GNU.sparse.numbytes": "600",
        },
        pattern(600),
    ),
    "0.1": (
        {"GNU.sparse.size": "3000", "GNU.sparse.numblocks": "1", "GNU.sparse.map": "2000,600"},
        pattern(600),
    ),
    "1.0": (
        {
            "GNU.sparse.major": "1",
            "GNU.sparse.minor": "0",
            "GNU.sparse.name": "real-name",
            "GNU.sparse.realsize": "3000",
        },
        padded(b"1\n2000\n600\n") + pattern(600),
    ),
}


@pytest.mark.parametrize(("records", "stored"), PAX_SPARSE.values(), ids=PAX_SPARSE)
def test_a_pax_sparse_member_is_special(records: dict[str, str], stored: bytes) -> None:
    sparse, _ = entry("GNUSparseFile.0/real-name", data=stored)
    sparse.pax_headers = records
    entries = [entry("before", data=b"b"), (sparse, stored), entry("after", data=pattern(700))]
    data = archive(entries, tarfile.PAX_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        assert [info.issparse() for info in tar] == [False, True, False]
    expected = tarfile_reads(data, skip={1})
    for pieces in PIECES.values():
        reads = stream_reads(data, pieces)
        assert [read.member.kind for read in reads] == [
            MemberKind.FILE,
            MemberKind.SPECIAL,
            MemberKind.FILE,
        ]
        assert [reads[0], reads[2]] == [expected[0], expected[2]]


# --- 7. random archives -----------------------------------------------------------------------

SEGMENTS = st.sampled_from(["a", "b", ".", "ü", "名前", "é" * 40, "x" * 60, "y" * 101, "z" * 160])
NAMES = st.lists(SEGMENTS, min_size=1, max_size=3).map("/".join)
KINDS = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chr": tarfile.CHRTYPE,
}
MTIMES = st.sampled_from([0, 1, MTIME, 8**11 - 1, 8**11, -1, MTIME + 0.5])


@st.composite
def entry_lists(draw: st.DrawFn) -> list[Entry]:
    entries: list[Entry] = []
    for index in range(draw(st.integers(1, 8))):
        name = draw(NAMES)
        kind = draw(st.sampled_from(sorted(KINDS)))
        mode = draw(st.sampled_from([0o644, 0o755, 0o600, 0o100, 0o010, 0o001]))
        mtime = draw(MTIMES)
        data = pattern(draw(st.integers(0, 2000)), index) if kind == "file" else b""
        link = ""
        if kind == "symlink":
            link = draw(NAMES)
        elif kind == "hardlink":
            earlier = [info.name for info, _ in entries]
            link = draw(st.sampled_from(earlier) if earlier else NAMES)
        entries.append(entry(name, KINDS[kind], data, mode=mode, link=link, mtime=mtime))
    return entries


@settings(max_examples=100, deadline=None)
@given(
    entries=entry_lists(),
    fmt=st.sampled_from(sorted(FORMATS.values())),
    global_headers=st.sampled_from([None, {"mtime": "12345.25"}, {"comment": "ü"}]),
    pieces=st.lists(st.integers(1, 1100), min_size=1, max_size=6),
    skip=st.sets(st.integers(0, 8)),
)
def test_random_archives_are_read_as_tarfile_reads_them(
    entries: list[Entry],
    fmt: int,
    global_headers: dict[str, str] | None,
    pieces: list[int],
    skip: set[int],
) -> None:
    buf = io.BytesIO()
    headers = global_headers if fmt == tarfile.PAX_FORMAT else None
    with tarfile.open(
        fileobj=buf, mode="w", format=fmt, encoding="utf-8", pax_headers=headers
    ) as tar:
        for info, data in entries:
            try:
                tar.addfile(info, io.BytesIO(data) if data else None)
            except ValueError:  # more than the format holds (ustar: long names, old mtimes)
                event("member the format cannot hold")
    data = buf.getvalue()
    assert stream_reads(data, pieces, skip) == tarfile_reads(data, skip)
