"""Property: whatever an archive holds, deploy refuses it in one line and changes nothing, or
writes only inside the target.

Hypothesis builds app archives from random members (files, folders, symlinks, hard links,
devices and pipes) with random names (``..``, absolute, empty parts, unicode, long) and
link targets, published with matching size and sha256, in every format.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.deploy.deploy_support import (
    FORMATS,
    RUNTIME,
    Entry,
    publication,
    runtime_meta,
    snapshot,
    tar_entry,
    venv_meta,
    write_archive,
    write_stack_metadata,
)
from tests.deploy.deploy_support import (
    quick_deploy as deploy,
)
from venvlayers import layout
from venvlayers.errors import DeployError

APP = "app-prop"

SEGMENTS = st.sampled_from(
    ["a", "b", "lib", "..", ".", "", "ü-名", "x" * 120, "canary", APP, "deploy"]
)
# A path below the layer folder, spelled as an archive might: parts may be empty, "." or "..".
RELATIVE = st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join)


@st.composite
def member_names(draw: st.DrawFn) -> str:
    prefix = draw(
        st.sampled_from([f"{APP}/", f"{APP}/", f"{APP}/", f"./{APP}/", "/", "other/", ""])
    )
    name = prefix + draw(RELATIVE)
    return name if name.strip("/") else f"{APP}/a"


@st.composite
def link_targets(draw: st.DrawFn, names: list[str]) -> str:
    kind = draw(st.sampled_from(["relative", "relative", "absolute", "member"]))
    if kind == "absolute":
        return "/" + draw(RELATIVE)
    if kind == "member" and names:
        return draw(st.sampled_from(names))
    return draw(RELATIVE) or "."


@st.composite
def layers(draw: st.DrawFn) -> list[Entry]:
    names = draw(st.lists(member_names(), min_size=1, max_size=8))
    entries = [tar_entry(APP, tarfile.DIRTYPE)]
    meta = tar_entry(
        f"{APP}/{layout.LAYER_METADATA}",
        data=_json(venv_meta([RUNTIME], launch_module="prop")),
    )
    entries.append(meta)
    for name in names:
        kind = draw(st.sampled_from(["file", "dir", "symlink", "symlink", "hardlink", "special"]))
        if kind == "file":
            entries.append(tar_entry(name, data=draw(st.binary(max_size=64))))
        elif kind == "dir":
            entries.append(tar_entry(name, tarfile.DIRTYPE))
        elif kind == "symlink":
            target = draw(link_targets(names))
            entries.append(tar_entry(name, tarfile.SYMTYPE, link=target, mode=0o777))
        elif kind == "hardlink":
            entries.append(tar_entry(name, tarfile.LNKTYPE, link=draw(link_targets(names))))
        else:
            entries.append(
                tar_entry(name, draw(st.sampled_from([tarfile.FIFOTYPE, tarfile.CHRTYPE])))
            )
    return draw(st.permutations(entries)) if draw(st.booleans()) else entries


def _json(data: object) -> bytes:
    return json.dumps(data).encode()


def outside_target(state: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in state.items() if k != "deploy" and not k.startswith("deploy/")}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A runtime layer's archive in every format, and a target it is deployed in."""
    root = tmp_path_factory.mktemp("property")
    entries = [
        tar_entry(RUNTIME, tarfile.DIRTYPE),
        tar_entry(f"{RUNTIME}/{layout.LAYER_METADATA}", data=_json(runtime_meta())),
    ]
    for fmt in FORMATS:
        write_archive(root / f"{RUNTIME}{fmt}", entries)
    yield root


def publish(base: Path, out: Path, fmt: str, entries: list[Entry]) -> None:
    out.mkdir()
    runtime = Path(shutil.copy2(base / f"{RUNTIME}{fmt}", out / f"{RUNTIME}{fmt}"))
    app = write_archive(out / f"{APP}{fmt}", entries)
    write_stack_metadata(
        out,
        [
            publication(out, runtime, layer_name=RUNTIME, install_target=RUNTIME),
            publication(out, app, layer_name=APP, install_target=APP, launch_module="prop"),
        ],
    )


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(entries=layers(), fmt=st.sampled_from(FORMATS), fresh=st.booleans())
def test_deploy_refuses_cleanly_or_writes_only_inside_the_target(
    base: Path, entries: list[Entry], fmt: str, fresh: bool
) -> None:
    work = Path(tempfile.mkdtemp(dir=base))
    try:
        publish(base, work / "source", fmt, entries)
        outer = work / "outer"
        outer.mkdir()
        (outer / "canary").write_text("untouched\n")
        target = outer / "deploy"
        if not fresh:
            # Something deployed already, which a refusal must leave byte for byte.
            target.mkdir()
            (target / "keep.txt").write_text("keep\n")
        before = snapshot(outer)
        try:
            deploy(work / "source", target)
        except DeployError as exc:
            event("refused")
            assert "\n" not in str(exc)
            assert snapshot(outer) == before, str(exc)
            return
        event("deployed")
        assert outside_target(snapshot(outer)) == outside_target(before)
        layer = target / APP
        for path in [layer, *layer.rglob("*")]:
            # Every name in the layer, links followed, stays in the layer.
            assert Path(os.path.realpath(path)).is_relative_to(os.path.realpath(layer)), path
    finally:
        shutil.rmtree(work, ignore_errors=True)
