"""The lower-layer link of a venv: ``_venvlayers_path.pth`` and its module, run by ``site``.

These tests run the interpreter without its own site setup (``-S``) and call
``site.addsitedir`` on a fake layer's site-packages, which is what ``site`` does for a venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from venvlayers.build.link import LINK_MODULE, LINK_PTH, write_layer_links
from venvlayers.errors import BuildError

SITE = "lib/python3.11/site-packages"


def _site_dirs(*folders: Path, already: Path | None = None) -> tuple[list[str], int]:
    """sys.path entries under the stack after ``site.addsitedir`` of each folder, in order,
    in a fresh interpreter, and how often fw-a's ``.pth`` file ran.

    ``already`` is put on sys.path first, as PYTHONPATH would.
    """
    code = (
        "import json, site, sys\n"
        "sys.path.extend(filter(None, sys.argv[1:2]))\n"
        "for folder in sys.argv[2:]:\n"
        "    site.addsitedir(folder)\n"
        "print(json.dumps([sys.path, getattr(sys, 'pth_runs', 0)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(already or ""), *map(str, folders)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    path, runs = json.loads(result.stdout)
    return [p for p in path if p.startswith(str(folders[0].parents[3]))], runs


@pytest.fixture
def layers(tmp_path: Path) -> Path:
    """An app over two frameworks and a runtime, each with an empty site-packages."""
    tmp_path = tmp_path / "stack"
    for name in ("app", "fw-a", "fw-b", "runtime"):
        (tmp_path / name / SITE).mkdir(parents=True)
    # A .pth file in a lower layer must be processed, once.
    (tmp_path / "fw-a" / SITE / "counter.pth").write_text(
        "import sys; sys.pth_runs = getattr(sys, 'pth_runs', 0) + 1\nextra\n"
    )
    (tmp_path / "fw-a" / SITE / "extra").mkdir()
    write_layer_links(
        tmp_path / "app",
        site_dir=SITE,
        lower_site_dirs=[f"../fw-a/{SITE}", f"../fw-b/{SITE}", f"../runtime/{SITE}"],
    )
    write_layer_links(tmp_path / "fw-a", site_dir=SITE, lower_site_dirs=[f"../runtime/{SITE}"])
    return tmp_path


def test_lower_layers_follow_in_order_with_their_pth_files(layers: Path) -> None:
    assert (layers / "app" / SITE / LINK_PTH).read_text() == f"import {LINK_MODULE}\n"
    assert _site_dirs(layers / "app" / SITE) == (
        [
            str(layers / "app" / SITE),
            str(layers / "fw-a" / SITE),
            str(layers / "fw-a" / SITE / "extra"),
            str(layers / "fw-b" / SITE),
            str(layers / "runtime" / SITE),
        ],
        1,
    )


def test_linking_twice_adds_nothing(layers: Path) -> None:
    twice = _site_dirs(layers / "app" / SITE, layers / "app" / SITE)
    assert twice == _site_dirs(layers / "app" / SITE)


def test_a_folder_already_on_sys_path_is_not_added_again(layers: Path) -> None:
    path, pth_runs = _site_dirs(layers / "app" / SITE, already=layers / "fw-a" / SITE)
    assert len(path) == len(set(path))
    assert pth_runs == 0
    assert path[0] == str(layers / "fw-a" / SITE)
    assert path[-1] == str(layers / "runtime" / SITE)


def test_a_missing_lower_layer_is_skipped(layers: Path) -> None:
    (layers / "fw-b" / SITE).rmdir()
    path, _ = _site_dirs(layers / "app" / SITE)
    assert str(layers / "fw-b" / SITE) not in path
    assert path[-1] == str(layers / "runtime" / SITE)


def test_links_survive_moving_the_whole_folder(layers: Path) -> None:
    moved = layers.rename(layers.with_name("moved"))
    path, _ = _site_dirs(moved / "app" / SITE)
    assert path[-1] == str(moved / "runtime" / SITE)


def test_rewriting_drops_the_stale_bytecode(layers: Path) -> None:
    cache = layers / "app" / SITE / "__pycache__"
    cache.mkdir()
    (cache / f"{LINK_MODULE}.cpython-311.pyc").write_bytes(b"stale")
    write_layer_links(layers / "app", site_dir=SITE, lower_site_dirs=[f"../fw-b/{SITE}"])
    assert not list(cache.iterdir())


@pytest.mark.parametrize("lower", ["/abs/site-packages", "sub/site-packages", "..", "../a/../../b"])
def test_lower_paths_must_lead_to_sibling_layers(tmp_path: Path, lower: str) -> None:
    with pytest.raises(BuildError, match="must be a relative path to a sibling layer"):
        write_layer_links(tmp_path / "app", site_dir=SITE, lower_site_dirs=[lower])
