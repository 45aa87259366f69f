"""Symlink rules: nothing in an archive may point outside the layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.publish.test_archive_helpers import MTIME, ROOT, SITE, extract, make_layer, tar_members
from venvlayers.contract.layer_files import is_interpreter_link
from venvlayers.errors import PublishError
from venvlayers.publish.archive import write_layer_archive


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return make_layer(tmp_path / "build" / "framework-demo", outside=tmp_path / "base")


def links_in(archive: Path) -> dict[str, str]:
    return {m.name.removeprefix(f"{ROOT}/"): m.linkname for m in tar_members(archive) if m.issym()}


@pytest.mark.parametrize(
    ("name", "target"),
    [
        (f"{SITE}/evil", "/etc/passwd"),
        ("share/escape", "../../outside.txt"),
        ("bin/pip", "../../base/python3.11"),  # a script link, not an interpreter link
    ],
)
def test_link_leaving_the_layer_is_refused(
    tmp_path: Path, layer: Path, name: str, target: str
) -> None:
    (layer / name).parent.mkdir(parents=True, exist_ok=True)
    (layer / name).symlink_to(target)
    dest = tmp_path / "out" / "layer.tar.zst"
    dest.parent.mkdir()
    dest.write_bytes(b"previous good archive")

    with pytest.raises(PublishError) as error:
        write_layer_archive(layer, dest, root_name=ROOT, mtime=MTIME)

    message = str(error.value)
    assert name in message and target in message and "\n" not in message
    assert dest.read_bytes() == b"previous good archive"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["layer.tar.zst"]


def test_absolute_links_into_the_layer_become_relative(tmp_path: Path, layer: Path) -> None:
    (layer / "bin" / "abs-dir").symlink_to(layer / SITE)
    (layer / "top").symlink_to(layer)  # the layer root itself
    archive = tmp_path / "layer.tar.gz"
    write_layer_archive(layer, archive, root_name=ROOT, fmt="tar.gz", mtime=MTIME)

    links = links_in(archive)
    assert links["bin/abs-dir"] == f"../{SITE}"
    assert links["top"] == "."
    assert not any(os.path.isabs(target) for target in links.values())
    unpacked = extract(archive, tmp_path / "out")
    assert (unpacked / "bin" / "abs-dir" / "pkg" / "__init__.py").is_file()


def test_layer_reached_through_a_symlinked_path(tmp_path: Path, layer: Path) -> None:
    # Links written against the real path still count as inside when the layer is
    # published through another spelling of its folder.
    alias = tmp_path / "alias"
    alias.symlink_to(layer.parent)
    archive = tmp_path / "layer.tar.gz"
    write_layer_archive(alias / layer.name, archive, root_name=ROOT, fmt="tar.gz", mtime=MTIME)
    assert links_in(archive)["share/venv/dynlib/libdemo.so"] == f"../../../{SITE}/pkg/libdemo.so"


def test_interpreter_links_are_left_out_only_when_they_leave(tmp_path: Path, layer: Path) -> None:
    archive = tmp_path / "layer.tar.gz"
    write_layer_archive(layer, archive, root_name=ROOT, fmt="tar.gz", mtime=MTIME)
    links = links_in(archive)
    assert "bin/python" not in links and "bin/python3.11" not in links
    assert links["bin/python3"] == "python"  # inside the layer: kept


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("bin/python", True),
        ("bin/python3", True),
        ("bin/python3.12", True),
        ("Scripts/python.exe", True),
        ("Scripts/pythonw.exe", True),
        ("bin/python-config", False),
        ("bin/python3.12-config", False),
        ("lib/bin/python", False),
        ("bin/pip", False),
    ],
)
def test_interpreter_link_names(path: str, expected: bool) -> None:
    assert is_interpreter_link(path) is expected


def test_special_files_are_refused(tmp_path: Path, layer: Path) -> None:
    os.mkfifo(layer / "pipe")
    with pytest.raises(PublishError, match="pipe: not a file, folder or symlink"):
        write_layer_archive(layer, tmp_path / "l.tar.gz", root_name=ROOT, fmt="tar.gz", mtime=1)
