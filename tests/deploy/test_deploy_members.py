"""The member rules: one layer folder with files, folders and links that stay inside it."""

from __future__ import annotations

import pytest

from venvlayers.deploy.members import (
    Member,
    MemberKind,
    UnsafeMember,
    check_members,
    layer_relative,
)

TOP = "framework-x@2"
F, D, S, H, X = (
    MemberKind.FILE,
    MemberKind.DIR,
    MemberKind.SYMLINK,
    MemberKind.HARDLINK,
    MemberKind.SPECIAL,
)


def layer(*members: Member) -> list[Member]:
    return [Member(TOP, D), *members]


def test_a_normal_layer_passes_and_is_counted() -> None:
    members = layer(
        Member(f"{TOP}/bin", D),
        Member(f"{TOP}/bin/tool", F, size=10),
        Member(f"{TOP}/lib/libx.so.1", F, size=3),
        Member(f"{TOP}/lib/libx.so", S, link="libx.so.1"),
        Member(f"{TOP}/share/venv/dynlib/libx.so", S, link="../../../lib/libx.so"),
        Member(f"{TOP}/lib/copy.so", H, link=f"{TOP}/lib/libx.so.1"),
    )
    assert check_members(members, TOP) == 6


@pytest.mark.parametrize(
    ("name", "relative"),
    [(TOP, ""), (f"{TOP}/", ""), (f"./{TOP}/a/b", "a/b"), (f"{TOP}/a/./b/", "a/b")],
)
def test_layer_relative_names(name: str, relative: str) -> None:
    assert layer_relative(name, TOP) == relative


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (Member(f"{TOP}/../evil", F), "'..' part"),
        (Member(f"{TOP}/a/../../evil", F), "'..' part"),
        (Member("/etc/passwd", F), "absolute path"),
        (Member(f"/{TOP}/x", F), "absolute path"),
        (Member("C:/x", F), "absolute path"),
        (Member("other-layer/x", F), "outside the layer folder"),
        (Member("x", F), "outside the layer folder"),
        (Member(f"{TOP}/link", S, link="/etc/passwd"), "absolute path"),
        (Member(f"{TOP}/link", S, link="../elsewhere"), "leaving its layer"),
        (Member(f"{TOP}/a/b/link", S, link="../../../x"), "leaving its layer"),
        (Member(f"{TOP}/hard", H, link="/etc/passwd"), "hard link leaving"),
        (Member(f"{TOP}/hard", H, link="elsewhere/x"), "hard link leaving"),
        (Member(f"{TOP}/dev", X), "device file"),
        (Member(f"{TOP}/a\0b", F), "NUL"),
    ],
)
def test_unsafe_members_are_refused(member: Member, reason: str) -> None:
    with pytest.raises(UnsafeMember, match=reason):
        check_members(layer(member), TOP)


def test_a_link_inside_the_layer_may_climb_within_it() -> None:
    assert check_members(layer(Member(f"{TOP}/a/b/link", S, link="../../c")), TOP) == 1


def test_nothing_may_be_written_through_a_symlink() -> None:
    # ``d/up`` -> ".." stays inside, but ``d/up/x`` -> "../escape" would land outside
    # once written through the link: refused whatever the member order.
    members = [
        Member(f"{TOP}/d", D),
        Member(f"{TOP}/d/up", S, link=".."),
        Member(f"{TOP}/d/up/x", S, link="../escape"),
    ]
    with pytest.raises(UnsafeMember, match="below the symlink 'd/up'"):
        check_members(layer(*members), TOP)
    with pytest.raises(UnsafeMember, match="below the symlink"):
        check_members(layer(*reversed(members)), TOP)


def test_duplicates_are_refused_except_repeated_folders() -> None:
    assert check_members(layer(Member(f"{TOP}/d", D), Member(f"{TOP}/d/", D)), TOP) == 1
    with pytest.raises(UnsafeMember, match="twice"):
        check_members(layer(Member(f"{TOP}/d", D), Member(f"{TOP}/d", S, link=".")), TOP)


def test_the_top_folder_must_be_a_folder() -> None:
    with pytest.raises(UnsafeMember, match="not a folder"):
        check_members([Member(TOP, F)], TOP)
