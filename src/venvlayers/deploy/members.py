"""What an archive may contain: one layer folder, regular files, folders and links inside it.

The checks decide where every member ends up: names and link texts are resolved against the
layer folder the way the file system will resolve them once unpacked, following the
archive's own symlinks (a chain of links can leave a folder that no single link leaves).

Two ways to run them: over a whole list scanned before anything is written
(:func:`check_members`), or member by member while the archive is unpacked into a hidden
folder (:class:`MemberGate`), where a member is checked before it is written and links,
the only members whose safety depends on later ones, are made after the whole list passed.
Either way a refused archive changes nothing visible (see :mod:`venvlayers.deploy.extract`).
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass


class MemberKind(enum.Enum):
    FILE = "file"
    DIR = "folder"
    SYMLINK = "symlink"
    HARDLINK = "hard link"
    SPECIAL = "device or pipe"


@dataclass(frozen=True)
class Member:
    """One archive entry as stored: ``name`` includes the layer's top folder."""

    name: str
    kind: MemberKind
    size: int = 0
    # Symlinks: the link text; hard links: the archive name of the linked file.
    link: str = ""
    # Regular files: whether any execute bit is set (the store keys content by it).
    executable: bool = False


class UnsafeMember(Exception):
    """An archive member that must not be extracted; ``str()`` says why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"member {name!r} {reason}")


# As the kernel's limit on links followed in one lookup (SYMLOOP_MAX / MAXSYMLINKS).
_MAX_LINKS_FOLLOWED = 40


def layer_relative(name: str, top: str) -> str:
    """``name`` relative to the layer folder ``top`` ("" for the folder itself).

    Raises :class:`UnsafeMember` for absolute names, ``..`` parts, and anything outside ``top``.
    """
    if "\0" in name:
        raise UnsafeMember(name, "has a NUL character in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeMember(name, "has an absolute path")
    # GNU tar writes "./top/..." by default; the leading "./" means nothing.
    stripped = name.removeprefix("./").rstrip("/")
    parts = stripped.split("/")
    if ".." in parts:
        raise UnsafeMember(name, "has a '..' part (path outside its layer)")
    parts = [part for part in parts if part not in ("", ".")]
    if not parts or parts[0] != top:
        raise UnsafeMember(name, f"is outside the layer folder {top!r}")
    return "/".join(parts[1:])


class _LinkLeaves(Exception):
    pass


class _LinkLoops(Exception):
    pass


def _resolve(
    symlinks: dict[str, str],
    folder: list[str],
    text: str,
    lower: frozenset[str],
    followed: int = 0,
) -> tuple[list[str], int, bool]:
    """Follow ``text`` from the layer path ``folder`` as the file system will.

    Only the archive's own symlinks exist in a freshly unpacked layer, so resolving against
    them is exact. ``..`` after a link climbs from where the link led, not from where it
    sits, which is why a lexical ``normpath`` of the link text is not enough. Returns where
    the walk ends, how many links it followed, and whether it ended in a lower layer.

    Climbing above the layer folder raises :class:`_LinkLeaves`, unless the next name is
    one of the ``lower`` layers (deployed beside this one; venvstacks links a venv's
    ``bin/python_`` to ``../../<runtime>/bin/python``) and nothing after it climbs again:
    that layer was checked when it was deployed, so the walk stops there.
    """
    parts = list(folder)
    names = [part for part in text.split("/") if part not in ("", ".")]
    for index, part in enumerate(names):
        if part == "..":
            if not parts:
                rest = names[index + 1 :]
                if rest and rest[0] in lower and ".." not in rest:
                    return rest, followed, True
                raise _LinkLeaves
            parts.pop()
            continue
        parts.append(part)
        target = symlinks.get("/".join(parts))
        if target is not None:
            if followed >= _MAX_LINKS_FOLLOWED:
                raise _LinkLoops
            parts, followed, outside = _resolve(symlinks, parts[:-1], target, lower, followed + 1)
            if outside:
                if ".." in names[index + 1 :]:
                    raise _LinkLeaves
                return [*parts, *names[index + 1 :]], followed, True
    return parts, followed, False


class MemberGate:
    """The member checks one member at a time, for an archive unpacked as it is read.

    :meth:`admit` refuses a member before it is written whenever writing it could land
    anywhere but at its own name inside the layer (names, kinds, duplicates, a member below
    a file or link, hard links to earlier files); symlinks are only made once
    :meth:`finish` has run every check of :func:`check_members` over the whole list,
    because whether a link leaves the layer can depend on links that come after it.
    """

    def __init__(self, top: str, lower: Iterable[str] = (), reserved: Iterable[str] = ()) -> None:
        self.top = top
        self._lower = tuple(lower)
        self._reserved = frozenset(reserved)
        self.members: list[Member] = []
        self._seen: dict[str, Member] = {}
        # Every folder some admitted member lies in, named or not.
        self._parents: set[str] = set()

    def admit(self, member: Member) -> str:
        """Check ``member``; its layer-relative path ("" for the layer folder)."""
        relative = layer_relative(member.name, self.top)
        if member.kind is MemberKind.SPECIAL:
            raise UnsafeMember(member.name, "is a device file or pipe")
        if relative in self._reserved:
            raise UnsafeMember(member.name, "has a name venvlayers reserves for itself")
        if relative == "":
            if member.kind is not MemberKind.DIR:
                raise UnsafeMember(member.name, "is the layer folder itself, but not a folder")
            self.members.append(member)
            return relative
        previous = self._seen.get(relative)
        if previous is not None and not (previous.kind is member.kind is MemberKind.DIR):
            raise UnsafeMember(member.name, "appears twice in the archive")
        if member.kind is not MemberKind.DIR and relative in self._parents:
            raise UnsafeMember(member.name, "is not a folder, yet other members lie below it")
        parent = posixpath.dirname(relative)
        while parent and parent not in self._parents:
            above = self._seen.get(parent)
            if above is not None and above.kind is not MemberKind.DIR:
                raise UnsafeMember(member.name, f"lies below the {above.kind.value} {parent!r}")
            self._parents.add(parent)
            parent = posixpath.dirname(parent)
        if member.kind is MemberKind.SYMLINK:
            _check_link_text(member)
        elif member.kind is MemberKind.HARDLINK:
            _check_hard_link(member, self.top, self._seen)
        self._seen[relative] = member
        self.members.append(member)
        return relative

    def finish(self) -> int:
        """Every check over the whole archive (see :func:`check_members`); the count."""
        return check_members(self.members, self.top, self._lower)


def _check_link_text(member: Member) -> None:
    if not member.link or "\0" in member.link:
        raise UnsafeMember(member.name, "is a link without a usable target")
    if member.link.startswith("/"):
        raise UnsafeMember(member.name, f"is a link to an absolute path {member.link!r}")


def check_members(members: Iterable[Member], top: str, lower: Iterable[str] = ()) -> int:
    """Refuse (raise :class:`UnsafeMember`) anything but one safe layer folder; returns the count.

    Every member lands at its own name inside the layer: no name passes through a symlink,
    file or hard link member (writing through a link is how a harmless-looking name lands
    outside the folder), every symlink resolves inside the layer even through other links,
    and a hard link names a regular file that comes before it in the archive. A symlink
    may lead into one of the ``lower`` layers, the folders beside this one it is built on.
    """
    beside = frozenset(lower) - {top}
    seen: dict[str, Member] = {}
    symlinks: dict[str, str] = {}
    for member in members:
        relative = layer_relative(member.name, top)
        if member.kind is MemberKind.SPECIAL:
            raise UnsafeMember(member.name, "is a device file or pipe")
        if relative == "":
            if member.kind is not MemberKind.DIR:
                raise UnsafeMember(member.name, "is the layer folder itself, but not a folder")
            continue
        previous = seen.get(relative)
        if previous is not None and not (previous.kind is member.kind is MemberKind.DIR):
            raise UnsafeMember(member.name, "appears twice in the archive")
        if member.kind is MemberKind.SYMLINK:
            _check_link_text(member)
            symlinks[relative] = member.link
        elif member.kind is MemberKind.HARDLINK:
            _check_hard_link(member, top, seen)
        seen[relative] = member
    for relative in seen:
        parent = posixpath.dirname(relative)
        while parent:
            above = seen.get(parent)
            if above is not None and above.kind is not MemberKind.DIR:
                raise UnsafeMember(
                    f"{top}/{relative}", f"lies below the {above.kind.value} {parent!r}"
                )
            parent = posixpath.dirname(parent)
    for relative, link in symlinks.items():
        name = seen[relative].name
        try:
            _resolve(symlinks, relative.split("/")[:-1], link, beside)
        except _LinkLeaves:
            raise UnsafeMember(name, f"is a link leaving its layer ({link!r})") from None
        except _LinkLoops:
            raise UnsafeMember(name, f"is a link in a loop of links ({link!r})") from None
    return len(seen)


def _check_hard_link(member: Member, top: str, seen: dict[str, Member]) -> None:
    try:
        target = layer_relative(member.link, top)
    except UnsafeMember:
        raise UnsafeMember(
            member.name, f"is a hard link leaving its layer ({member.link!r})"
        ) from None
    if not target:
        raise UnsafeMember(member.name, "is a hard link to the layer folder")
    linked = seen.get(target)
    if linked is None:
        # Unpacking links to what is already on disk: a later or missing member is nothing.
        raise UnsafeMember(
            member.name, f"is a hard link to {member.link!r}, not a file earlier in the archive"
        )
    if linked.kind not in (MemberKind.FILE, MemberKind.HARDLINK):
        raise UnsafeMember(
            member.name, f"is a hard link to the {linked.kind.value} {member.link!r}"
        )
