"""A publish after an interrupted one: no stale archive is reused, no leftover stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import venvlayers

pytestmark = [pytest.mark.slow]


def published_entry(out: Path, install_target: str) -> dict[str, object]:
    index = json.loads((out / "__venvstacks__/venvstacks.json").read_text())
    return next(
        entry
        for entries in index["layers"].values()
        for entry in entries
        if entry["install_target"] == install_target
    )


@pytest.mark.parametrize("damage", ["other size", "same size"])
def test_a_changed_archive_is_written_again_not_reused(
    example_stack: Path, tmp_path: Path, damage: str
) -> None:
    out = tmp_path / "out"
    venvlayers("publish", example_stack, "-o", out)
    archive = out / "app-classify.tar.zst"
    good = archive.read_bytes()
    # As a publish killed between writing an archive and its metadata leaves it.
    bad = good[:-100] if damage == "other size" else bytes(len(good))
    archive.write_bytes(bad)

    again = venvlayers("publish", example_stack, "-o", out).stdout
    assert "app-classify.tar.zst: written" in again
    assert "framework-sklearn.tar.zst: reused" in again
    assert archive.read_bytes() == good, "publishing is reproducible"
    entry = published_entry(out, "app-classify")
    assert entry["archive_size"] == len(good)
    target = tmp_path / "target"
    venvlayers("deploy", out, "--target", target, "--app", "classify")
    assert "iris accuracy" in venvlayers("run", target, "classify").stdout


def test_leftovers_of_a_killed_publish_are_removed(example_stack: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    venvlayers("publish", example_stack, "-o", out)
    leftovers = [
        out / ".app-classify.tar.zst.k2j3h4.tmp",
        out / "__venvstacks__/.venvstacks.json.a8d7.tmp",
        out / "__venvstacks__/env_metadata/.app-classify.json.q1w2.tmp",
    ]
    for leftover in leftovers:
        leftover.write_bytes(b"half written")
    result = venvlayers("publish", example_stack, "-o", out)
    assert "left by an interrupted publish" in result.stderr
    assert [p for p in leftovers if p.exists()] == []
    assert list(out.rglob("*.tmp")) == []
