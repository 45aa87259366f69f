"""What an archive may contain: one layer folder, regular files, folders and links inside it.

The checks run over every member of every archive before anything in the deployment folder
changes, so a hostile or broken archive is refused as a whole. They are lexical (names and
link texts only); :mod:`tarfile`'s ``data`` filter repeats them against the real file system
while extracting, as a second line of defence.
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


class UnsafeMember(Exception):
    """An archive member that must not be extracted; ``str()`` says why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"member {name!r} {reason}")


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


def _link_stays_inside(relative: str, link: str) -> bool:
    """Whether a symlink at layer path ``relative`` pointing to ``link`` stays in the layer."""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), link))
    return resolved != ".." and not resolved.startswith("../")


def check_members(members: Iterable[Member], top: str) -> int:
    """Refuse (raise :class:`UnsafeMember`) anything but one safe layer folder; returns the count.

    Besides names and link targets, no member may sit below a symlink member: writing through
    a link is how a lexically harmless name lands outside the folder.
    """
    seen: dict[str, MemberKind] = {}
    symlinks: set[str] = set()
    for member in members:
        relative = layer_relative(member.name, top)
        if member.kind is MemberKind.SPECIAL:
            raise UnsafeMember(member.name, "is a device file or pipe")
        if relative == "":
            if member.kind is not MemberKind.DIR:
                raise UnsafeMember(member.name, "is the layer folder itself, but not a folder")
            continue
        previous = seen.get(relative)
        if previous is not None and not (previous is member.kind is MemberKind.DIR):
            raise UnsafeMember(member.name, "appears twice in the archive")
        seen[relative] = member.kind
        if member.kind is MemberKind.SYMLINK:
            if member.link.startswith("/"):
                raise UnsafeMember(member.name, f"is a link to an absolute path {member.link!r}")
            if not _link_stays_inside(relative, member.link):
                raise UnsafeMember(member.name, f"is a link leaving its layer ({member.link!r})")
            symlinks.add(relative)
        elif member.kind is MemberKind.HARDLINK:
            try:
                target = layer_relative(member.link, top)
            except UnsafeMember:
                raise UnsafeMember(
                    member.name, f"is a hard link leaving its layer ({member.link!r})"
                ) from None
            if not target:
                raise UnsafeMember(member.name, "is a hard link to the layer folder")
    for relative in seen:
        parent = posixpath.dirname(relative)
        while parent:
            if parent in symlinks:
                raise UnsafeMember(f"{top}/{relative}", f"lies below the symlink {parent!r}")
            parent = posixpath.dirname(parent)
    return len(seen)
