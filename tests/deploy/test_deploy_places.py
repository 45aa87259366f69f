"""Unit tests of :class:`venvlayers.deploy.places.Placer`: every way of placing a layer
(the atomic exchange, a link to a hidden versioned folder, two renames), then a commit, a
roll-back, or a kill that the next run's :func:`recover_leftovers` finishes.

Each test checks which way was taken by the names it left (see :func:`way_taken`), so it
cannot pass on another one. The ways without the exchange are forced as the deploy tests
force them (tests/deploy/deploy_support.py DEPLOY_SCRIPT): ``places.exchange`` answers False.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.deploy.deploy_support import snapshot
from venvlayers.deploy import places
from venvlayers.deploy.places import Placer, new_partial, recover_leftovers

# How a layer path is made before a replacement: a real folder, or a link to a hidden
# versioned folder (as a deploy without the exchange leaves it).
FOLDER, LINKED = "folder", "linked"

# Replacing an existing layer: way expected -> (how the layer path is made, exchange works).
REPLACING = {
    "exchange": (FOLDER, True),
    "renames": (FOLDER, False),
    "link": (LINKED, False),
    "link-where-exchange-works": (LINKED, True),
}
# Placing a layer where none was: way expected -> exchange works. (Without the exchange a
# new layer always gets a link: the renames are only for a folder already there.)
PLACING_NEW = {"new": True, "link": False}


class Killed(Exception):
    """Stands for a kill -9 at a step of the placer (raised by its step hook)."""


# --- layers and what the target holds ---------------------------------------------------------


def fill(folder: Path, text: str) -> Path:
    """A layer folder saying ``text``: a file, a nested binary file and a relative link."""
    (folder / "lib").mkdir(parents=True)
    (folder / "say.txt").write_text(text)
    (folder / "lib" / "data.bin").write_bytes(text.encode() * 3 + b"\0\xff\n")
    (folder / "lib" / "say").symlink_to("../say.txt")
    return folder


def new_layer(target: Path, name: str) -> Path:
    """A new layer unpacked beside its path, as the deploy does."""
    return fill(new_partial(target, name), "new")


def old_layer(target: Path, name: str, how: str) -> None:
    """The layer at ``target / name`` before the deploy, saying "old"."""
    if how == FOLDER:
        fill(target / name, "old")
        return
    versioned = fill(target / f".{name}.v-0ld0ld", "old")
    (target / name).symlink_to(versioned.name)


def says(final: Path) -> str:
    return (final / "say.txt").read_text()


def hidden(target: Path) -> list[str]:
    """The hidden names in ``target``, but for the versioned folders layer paths link to."""
    linked = {os.readlink(p) for p in target.iterdir() if p.is_symlink()}
    return sorted(
        p.name for p in target.iterdir() if p.name.startswith(".") and p.name not in linked
    )


def kinds(target: Path, name: str) -> list[str]:
    """The kinds of hidden names (``partial``, ``old``, ``v``...) held for layer ``name``."""
    prefix = f".{name}."
    return sorted(
        p.name[len(prefix) :].partition("-")[0]
        for p in target.iterdir()
        if p.name.startswith(prefix)
    )


def way_taken(target: Path, name: str) -> str:
    """How layer ``name`` was just placed, read from the names it left (before a commit)."""
    final = target / name
    assert says(final) == "new"
    if final.is_symlink():
        link = os.readlink(final)
        assert link.startswith(f".{name}.v-") and "/" not in link
        assert (target / link).is_dir()
        return "link"
    assert final.is_dir()
    left = kinds(target, name)
    held = {"partial": "exchange", "old": "renames"}
    if not left:
        return "new"
    assert len(left) == 1 and left[0] in held, left
    (kept,) = target.glob(f".{name}.{left[0]}-*")
    assert says(kept) == "old"  # what the layer replaces is kept until the commit
    return held[left[0]]


def no_exchange(first: Path, second: Path) -> bool:
    return False


def set_exchange(monkeypatch: pytest.MonkeyPatch, target: Path, works: bool) -> None:
    """Make ``target``'s file system swap names (skip if it truly cannot) or not."""
    if not works:
        monkeypatch.setattr(places, "exchange", no_exchange)
    elif not Placer(target).can_exchange():
        pytest.skip("this file system cannot swap two names")


@pytest.fixture
def target(tmp_path: Path) -> Path:
    folder = tmp_path / "deploy"
    folder.mkdir()
    # Another layer, never placed: nothing the placer does may touch it.
    fill(folder / "untouched", "other")
    return folder


# --- 1. a new layer, rolled back ----------------------------------------------------------------


@pytest.mark.parametrize("way", PLACING_NEW)
def test_a_new_layer_rolled_back_is_gone(
    way: str, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_exchange(monkeypatch, target, PLACING_NEW[way])
    before = snapshot(target)
    placer = Placer(target)
    placer.move_into_place(new_layer(target, "app"), target / "app")
    assert way_taken(target, "app") == way
    placer.roll_back()
    assert not (target / "app").exists() and not (target / "app").is_symlink()
    assert [p.name for p in target.iterdir() if p.name.startswith(".")] == []
    assert snapshot(target) == before


# --- 2. and 3. a layer replaced, then rolled back or committed ----------------------------------


@pytest.mark.parametrize("way", REPLACING)
def test_a_replaced_layer_rolled_back_is_the_old_one_again(
    way: str, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    how, works = REPLACING[way]
    set_exchange(monkeypatch, target, works)
    old_layer(target, "app", how)
    before = snapshot(target)
    placer = Placer(target)
    placer.move_into_place(new_layer(target, "app"), target / "app")
    assert way_taken(target, "app") == way.partition("-")[0]
    placer.roll_back()
    assert says(target / "app") == "old"
    assert (target / "app").is_symlink() == (how == LINKED)
    assert hidden(target) == []
    assert snapshot(target) == before
    # Nothing is left to commit: the old layer stays.
    placer.commit()
    assert snapshot(target) == before


@pytest.mark.parametrize("way", REPLACING)
def test_a_replaced_layer_committed_is_the_new_one_and_the_old_is_deleted(
    way: str, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    how, works = REPLACING[way]
    set_exchange(monkeypatch, target, works)
    old_layer(target, "app", how)
    placer = Placer(target)
    placer.move_into_place(new_layer(target, "app"), target / "app")
    assert way_taken(target, "app") == way.partition("-")[0]
    placer.commit()
    assert says(target / "app") == "new"
    assert hidden(target) == []
    # Only the versioned folder the layer path links to is left, if it is a link.
    assert kinds(target, "app") == (["v"] if (target / "app").is_symlink() else [])
    assert not (target / ".app.v-0ld0ld").exists()
    after = snapshot(target)
    # Nothing is left to roll back: the new layer stays.
    placer.roll_back()
    assert snapshot(target) == after


# --- 4. several layers placed by one placer -----------------------------------------------------

# "a" is new, "b" and "c" are folders, "d" links to a versioned folder. Per setting of the
# exchange: the way each one is placed. In "b-cannot", the file system swaps names in general
# (the placer's probe) but not "b" (as a layer path on another mount would be).
SEVERAL = {
    "works": {"a": "new", "b": "exchange", "c": "exchange", "d": "link"},
    "missing": {"a": "link", "b": "renames", "c": "renames", "d": "link"},
    "b-cannot": {"a": "new", "b": "renames", "c": "exchange", "d": "link"},
}


def set_several(monkeypatch: pytest.MonkeyPatch, target: Path, exchange: str) -> None:
    set_exchange(monkeypatch, target, exchange != "missing")
    if exchange == "b-cannot":
        real = places.exchange

        def all_but_b(first: Path, second: Path) -> bool:
            return "b" not in (first.name, second.name) and real(first, second)

        monkeypatch.setattr(places, "exchange", all_but_b)


def old_several(target: Path) -> None:
    old_layer(target, "b", FOLDER)
    old_layer(target, "c", FOLDER)
    old_layer(target, "d", LINKED)


def place_several(target: Path) -> Placer:
    placer = Placer(target)
    for name in "abcd":
        placer.move_into_place(new_layer(target, name), target / name)
    return placer


@pytest.mark.parametrize("exchange", SEVERAL)
def test_several_layers_rolled_back_are_all_as_they_were(
    exchange: str, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_several(monkeypatch, target, exchange)
    old_several(target)
    before = snapshot(target)
    placer = place_several(target)
    assert {name: way_taken(target, name) for name in "abcd"} == SEVERAL[exchange]
    placer.roll_back()
    assert not (target / "a").exists() and not (target / "a").is_symlink()
    assert [says(target / name) for name in "bcd"] == ["old"] * 3
    assert hidden(target) == []
    assert snapshot(target) == before


@pytest.mark.parametrize("exchange", SEVERAL)
def test_several_layers_committed_are_all_new(
    exchange: str, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_several(monkeypatch, target, exchange)
    untouched = snapshot(target / "untouched")
    old_several(target)
    placer = place_several(target)
    assert {name: way_taken(target, name) for name in "abcd"} == SEVERAL[exchange]
    placer.commit()
    assert [says(target / name) for name in "abcd"] == ["new"] * 4
    assert hidden(target) == []
    assert not (target / ".d.v-0ld0ld").exists()
    assert snapshot(target / "untouched") == untouched


# --- 5. kills: what the next run's recover_leftovers makes of them ------------------------------


@pytest.mark.parametrize(
    ("way", "how", "works"),
    [("new", None, True), ("link", None, False)]
    + [(way.partition("-")[0], how, works) for way, (how, works) in REPLACING.items()],
)
def test_a_kill_between_placing_and_commit_leaves_the_new_layer(
    way: str, how: str | None, works: bool, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_exchange(monkeypatch, target, works)
    if how is not None:
        old_layer(target, "app", how)
    placer = Placer(target)
    placer.move_into_place(new_layer(target, "app"), target / "app")
    assert way_taken(target, "app") == way
    left = hidden(target)
    del placer  # killed: neither commit nor roll_back runs
    reports: list[str] = []
    recover_leftovers(target, reports.append)
    assert says(target / "app") == "new"
    assert (target / "app").is_symlink() == (way == "link")
    assert hidden(target) == []
    assert reports == [f"{name}: removed, left over from an interrupted deploy" for name in left]
    # Done once: a second run finds nothing.
    after = snapshot(target)
    recover_leftovers(target, reports.append)
    assert snapshot(target) == after and len(reports) == len(left)


def test_a_kill_in_the_middle_of_a_roll_back_by_renames_puts_the_old_layer_back(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_exchange(monkeypatch, target, False)
    old_layer(target, "app", FOLDER)
    before = snapshot(target)
    placer = Placer(target)
    placer.move_into_place(new_layer(target, "app"), target / "app")
    assert way_taken(target, "app") == "renames"
    del placer
    # roll_back's first rename done, its second not: the new layer moved to the trash, the
    # old one still under its hidden name, the layer path missing.
    os.replace(target / "app", target / ".app.trash-k1ll3d")
    assert kinds(target, "app") == ["old", "trash"]
    reports: list[str] = []
    recover_leftovers(target, reports.append)
    assert says(target / "app") == "old"
    assert snapshot(target) == before
    assert reports == [
        "app: restored after an interrupted deploy",
        ".app.trash-k1ll3d: removed, left over from an interrupted deploy",
    ]


def test_a_missing_layer_path_beside_its_old_content_is_put_back(target: Path) -> None:
    """The state crafted by hand: only ``.X.old-…`` is left of the layer."""
    old_layer(target, "app", FOLDER)
    before = snapshot(target)
    os.replace(target / "app", target / ".app.old-1234abcd")
    reports: list[str] = []
    recover_leftovers(target, reports.append)
    assert reports == ["app: restored after an interrupted deploy"]
    assert snapshot(target) == before


@pytest.mark.parametrize(("way", "how"), [("renames", FOLDER), ("link", LINKED), ("link", None)])
def test_a_kill_between_the_renames_of_a_placing_leaves_the_old_layer(
    way: str, how: str | None, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The placer's "swap" step comes between moving the old layer (or the new versioned
    folder) aside and renaming the new one in: a kill there is undone."""
    set_exchange(monkeypatch, target, False)
    if how is not None:
        old_layer(target, "app", how)
    before = snapshot(target)

    def kill(step: str, name: str) -> None:
        if step == "swap" and name == "app":
            raise Killed

    placer = Placer(target, kill)
    with pytest.raises(Killed):
        placer.move_into_place(new_layer(target, "app"), target / "app")
    left = kinds(target, "app")
    assert left == {"renames": ["old", "partial"], "link": ["link", "v"]}[way] + (
        ["v"] if how == LINKED else []
    )
    reports: list[str] = []
    recover_leftovers(target, reports.append)
    assert snapshot(target) == before
    assert hidden(target) == []
    assert ("app: restored after an interrupted deploy" in reports) == (way == "renames")


# --- a layer path linking elsewhere ----------------------------------------------------------------------------------


@pytest.mark.parametrize("elsewhere", ["elsewhere", ".other.v-0ld0ld"])
def test_a_layer_path_linking_elsewhere_rolled_back_links_there_again(
    elsewhere: str, target: Path
) -> None:
    fill(target / elsewhere, "old")
    (target / "app").symlink_to(elsewhere)
    before = snapshot(target)
    placer = Placer(target)
    placer.move_into_place(new_layer(target, "app"), target / "app")
    assert way_taken(target, "app") == "link"
    placer.roll_back()
    assert snapshot(target) == before
