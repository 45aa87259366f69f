"""A tar stream read front to back, member data handed on without copying.

tarfile's stream mode copies every byte of member data four or five times on its way out
(its block buffer, the joins of ``_Stream``, ``_FileInFile``, the buffered reader), all
while holding the GIL: for a torch layer that is more than 20 GB of copying, on the thread
that unpacking waits for. Here headers are still decoded by tarfile (``TarInfo.frombuf``:
checksums, base-256 numbers, ustar prefixes, V7 folders), and this module adds only what
``frombuf`` leaves to the reader: pax records (local and global), GNU long names and long
link names, and the walk from one header to the next. Member data is handed on as views of
the decompressed chunks.

Headers apply as tarfile applies them (the first extended header before a member wins,
pax paths lose their trailing slashes, GNU long names end at a NUL), with two exceptions
where tarfile's reading of a hostile archive is inconsistent or lenient: a global pax header
may not set a path, link or size (tarfile gives members that size yet finds the next header
by their own), and a malformed pax record or number, or a header cut short, is an error
rather than the end of the archive.

What is read is bounded: every block is counted by ``room`` before it is read (a member's
data before any of it), and a pax record block or GNU long name may not exceed
:data:`HEADER_ALLOWANCE` bytes, so no header is held in memory unboundedly.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from venvlayers.deploy.archive_io import _CHUNK, HEADER_ALLOWANCE, MAX_LINK_TEXT
from venvlayers.deploy.members import Member, MemberKind

BLOCK = tarfile.BLOCKSIZE
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
_PAX_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_GNU_LONG_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
# A record's length: enough digits for any header within the allowance, no more.
_PAX_RECORD = re.compile(rb"(\d{1,9}) ([^=]+)=")
# Pax keys that may not come from a global header.
_STRUCTURAL = frozenset({"path", "linkpath", "size"})


class Chunks(Protocol):
    """A decompressed stream that hands out views of its chunks (see archive_io)."""

    def read_view(self, size: int) -> memoryview:
        """Up to ``size`` bytes (at least one unless the stream ended), not copied."""
        ...


class TarHeaderTooLarge(Exception):
    """A pax record block or GNU long name larger than :data:`HEADER_ALLOWANCE`."""


@dataclass(frozen=True)
class TarMember:
    member: Member
    mtime: float
    mode: int


class TarStream:
    """The members of the tar stream ``chunks``, in order (:meth:`members`); the data of
    each regular file is read with :meth:`data` before the next member is asked for, or
    skipped unread."""

    def __init__(self, chunks: Chunks, room: Callable[[int], None]) -> None:
        self._chunks = chunks
        self._room = room
        # Data bytes of the current member not read yet, and the padding after them.
        self._left = 0
        self._padding = 0
        self._offset = 0
        self._global: dict[str, str] = {}

    def members(self) -> Iterator[TarMember]:
        while True:
            self._skip_rest()
            found = self._next()
            if found is None:
                return
            yield found

    def data(self, size: int) -> Iterator[memoryview]:
        """The ``size`` data bytes of the member just returned (all of them)."""
        if size != self._left:
            raise tarfile.ReadError("member data read out of turn")
        return self._rest()

    # --- internals -------------------------------------------------------------------------

    def _rest(self) -> Iterator[memoryview]:
        """What is left of the current member's data."""
        while self._left:
            view = self._chunks.read_view(min(self._left, _CHUNK))
            if not view:
                raise tarfile.ReadError("unexpected end of data")
            self._left -= len(view)
            self._offset += len(view)
            yield view

    def _skip_rest(self) -> None:
        for _view in self._rest():
            pass
        if self._padding:
            self._exact(self._padding)
            self._padding = 0

    def _exact(self, size: int) -> bytes:
        parts = []
        wanted = size
        while wanted:
            view = self._chunks.read_view(wanted)
            if not view:
                break
            parts.append(view.tobytes())
            wanted -= len(view)
        self._offset += size - wanted
        data = b"".join(parts)
        if wanted and size != BLOCK:
            raise tarfile.ReadError("unexpected end of data")
        return data

    def _block(self) -> tarfile.TarInfo | None:
        """The next header block decoded; None at the end of the archive."""
        start = self._offset
        self._room(BLOCK)
        buf = self._exact(BLOCK)
        if len(buf) != BLOCK:
            if start == 0:
                raise tarfile.ReadError("empty file" if not buf else "truncated header")
            if buf:
                raise tarfile.ReadError("unexpected end of data")
            return None  # the stream ends where a header would start: no end blocks
        if buf.count(0) == BLOCK:
            return None  # the end-of-archive blocks
        try:
            return tarfile.TarInfo.frombuf(buf, _ENCODING, _ERRORS)
        except tarfile.HeaderError as exc:
            # As tarfile: garbage where the first header should be is an error; later, it
            # ends the archive (whatever follows is still hashed with the file).
            if start == 0:
                raise tarfile.ReadError(str(exc)) from None
            return None

    def _extra(self, info: tarfile.TarInfo) -> bytes:
        """The data of a pax or GNU long-name header, bounded."""
        if info.size > HEADER_ALLOWANCE:
            raise TarHeaderTooLarge
        padded = _padded(info.size)
        self._room(padded)
        data = self._exact(padded)
        if len(data) != padded:
            raise tarfile.ReadError("unexpected end of data")
        return data[: info.size]

    def _next(self) -> TarMember | None:
        pax: dict[str, str] = {}
        # As tarfile: of the extended headers before one member, the first to set a name
        # (pax path or GNU long name) or a link wins.
        name: str | None = None
        link: str | None = None
        # tarfile takes one slash off a GNU long folder name, all of them off a pax path.
        long_name = False
        extended = False
        extra = 0
        while True:
            info = self._block()
            if info is None:
                if extended:
                    raise tarfile.ReadError("an extended header with no member after it")
                return None
            if info.type not in _PAX_TYPES and info.type not in _GNU_LONG_TYPES:
                break
            extended = True
            extra += info.size
            if extra > HEADER_ALLOWANCE:
                raise TarHeaderTooLarge
            data = self._extra(info)
            if info.type == tarfile.XGLTYPE:
                records = _pax_records(data)
                structural = sorted(_STRUCTURAL & records.keys())
                if structural:
                    # Every later member would share one name or size: no real archive
                    # does this, and tarfile's own reading of it is inconsistent.
                    raise tarfile.ReadError(f"a global pax header sets {structural[0]!r}")
                self._global.update(records)
            elif info.type in _PAX_TYPES:
                records = _pax_records(data)
                for key, value in records.items():
                    pax.setdefault(key, value)
                if name is None and "path" in records:
                    name = records["path"].rstrip("/")
                if link is None and "linkpath" in records:
                    link = records["linkpath"]
            elif info.type == tarfile.GNUTYPE_LONGNAME:
                if name is None:
                    name, long_name = _nts(data), True
            elif link is None:
                link = _nts(data)
        records = {**self._global, **pax}
        if name is None:
            # A ustar prefix can put a slash back after frombuf stripped it.
            name = info.name.rstrip("/") if info.isdir() else info.name
        elif long_name and info.isdir():
            name = name.removesuffix("/")
        if link is None:
            link = info.linkname
        size = info.size
        if "size" in records:
            size = _pax_int(records["size"], "size")
        mtime: float = info.mtime
        if "mtime" in records:
            mtime = _pax_float(records["mtime"])
        if info.type == tarfile.GNUTYPE_SPARSE:
            # Its map may run on in blocks of its own: nothing after it can be read safely.
            raise tarfile.ReadError(f"member {name!r} is a sparse file")
        kind = _kind(info, any(key.startswith("GNU.sparse.") for key in records))
        # As tarfile: data follows regular files and members of unknown types only.
        data_size = size if info.isreg() or info.type not in tarfile.SUPPORTED_TYPES else 0
        self._room(_padded(data_size))
        self._left = data_size
        self._padding = _padded(data_size) - data_size
        if kind is MemberKind.SYMLINK and len(link) > MAX_LINK_TEXT:
            raise tarfile.ReadError(f"member {name!r} is a symlink to a {len(link)}-byte path")
        if kind is MemberKind.FILE:
            member = Member(name, kind, size=size, executable=bool(info.mode & 0o111))
        elif kind in (MemberKind.SYMLINK, MemberKind.HARDLINK):
            member = Member(name, kind, link=link)
        else:
            member = Member(name, kind)
        return TarMember(member, mtime, info.mode)


def _kind(info: tarfile.TarInfo, sparse: bool) -> MemberKind:
    if sparse:
        return MemberKind.SPECIAL
    if info.isdir():
        return MemberKind.DIR
    if info.issym():
        return MemberKind.SYMLINK
    if info.islnk():
        return MemberKind.HARDLINK
    if info.isreg():
        return MemberKind.FILE
    return MemberKind.SPECIAL


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _nts(data: bytes) -> str:
    """A NUL-terminated name, as tarfile reads it."""
    return data.split(b"\0", 1)[0].decode(_ENCODING, _ERRORS)


def _pax_records(data: bytes) -> dict[str, str]:
    """The records of a pax header block ("LENGTH KEY=VALUE\\n", LENGTH counting it all)."""
    records = {}
    pos = 0
    while pos < len(data) and data[pos : pos + 1] != b"\0":
        match = _PAX_RECORD.match(data, pos)
        if match is None:
            raise tarfile.ReadError("invalid pax header")
        length = int(match.group(1))
        end = match.start(1) + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise tarfile.ReadError("invalid pax header")
        key = match.group(2).decode(_ENCODING, _ERRORS)
        value = data[match.end() : end - 1]
        records[key] = value.decode(_ENCODING, _ERRORS)
        pos = end
    return records


def _pax_int(text: str, key: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise tarfile.ReadError(f"invalid pax {key} {text!r}")
    return int(text)


def _pax_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise tarfile.ReadError(f"invalid pax mtime {text!r}") from None
