"""Registry references and reproducible image layers, without a registry."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from venvlayers.oci import OciError, OciRef, parse_oci_ref
from venvlayers.oci.imagelayer import pack_layer
from venvlayers.oci.media import layer_media_type


def test_references_parse_with_ports_tags_and_digests() -> None:
    ref = parse_oci_ref("oci://127.0.0.1:5000/team/stack:v1")
    assert ref == OciRef("127.0.0.1:5000", "team/stack", "v1")
    assert ref.insecure and ref.hostname == "127.0.0.1"
    assert not parse_oci_ref("oci://ghcr.io/o/stack").insecure
    assert parse_oci_ref("oci://localhost/x").insecure
    assert parse_oci_ref("oci://[::1]:5000/x:t").insecure
    digest = "sha256:" + "a" * 64
    assert parse_oci_ref(f"oci://h/x@{digest}").reference == digest
    assert str(ref) == "oci://127.0.0.1:5000/team/stack:v1"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("oci://host", "no registry host"),
        ("oci://host/Upper:v1", "repository 'Upper' is not valid"),
        ("oci://host/x:-bad", "tag '-bad' is not valid"),
        ("oci://host/x@sha256:12", "not sha256:<64 hex digits>"),
        ("docker://host/x", "not a registry reference"),
    ],
)
def test_bad_references_are_refused_in_one_line(value: str, words: str) -> None:
    with pytest.raises(OciError, match=words):
        parse_oci_ref(value)


def test_layer_media_types_follow_the_archive_format() -> None:
    assert layer_media_type("a.tar.zst") == "application/vnd.venvlayers.layer.v1.tar+zstd"
    with pytest.raises(OciError):
        layer_media_type("a.rar")


def make_tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "bin" / "tool").chmod(0o775)
    (root / "lib.py").write_text("x = 1\n")
    (root / "link").symlink_to("lib.py")
    return root


def test_image_layers_do_not_depend_on_place_owner_or_times(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "a" / "framework-x")
    second = make_tree(tmp_path / "elsewhere" / "framework-x")
    os.utime(second / "lib.py", (1, 1))
    (second / "lib.py").chmod(0o600)
    one = pack_layer(first, "/opt/venvlayers/framework-x", tmp_path / "1.tgz", mtime=100)
    two = pack_layer(second, "/opt/venvlayers/framework-x", tmp_path / "2.tgz", mtime=100)
    assert one.digest == two.digest and one.diff_id == two.diff_id
    with tarfile.open(one.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members)[:3] == ["opt", "opt/venvlayers", "opt/venvlayers/framework-x"]
    assert members["opt/venvlayers/framework-x/bin/tool"].mode == 0o755
    assert members["opt/venvlayers/framework-x/lib.py"].mode == 0o644
    assert members["opt/venvlayers/framework-x/link"].linkname == "lib.py"
    assert {m.mtime for m in members.values()} == {100}
    assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "")}
