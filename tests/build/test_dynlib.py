"""Shared-library exposure (``share/venv/dynlib``) and the launcher that uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from venvlayers import layout
from venvlayers._injected import postinstall
from venvlayers.build.dynlib import (
    DYNLIB_LAUNCHER,
    exclude_matcher,
    expose_dynlibs,
    has_dynlibs,
    is_shared_library,
    write_app_python,
)
from venvlayers.errors import BuildError

SITE = "lib/python3.11/site-packages"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Linux and macOS only")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0", True),
        ("numpy.libs/libscipy_openblas64_-32a4b2a6.so", True),
        ("torch/lib/libtorch_cpu.so", True),
        ("nvidia/cublas/lib/libcublas.so.12", True),
        ("sklearn/.dylibs/libomp.dylib", True),
        ("pkg.libs/helper.so", True),
        ("numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so", False),
        ("libcst/native.cpython-311-darwin.so", False),
        ("cryptography/hazmat/bindings/_rust.abi3.so", False),
        ("libfoo.cpython-311-x86_64-linux-gnu.so", False),
        ("pkg/_speedups.pypy310-pp73-x86_64-linux-gnu.so", False),
        ("pkg/_speedups.so", False),
        ("pkg/module.py", False),
        ("pkg/data.so.txt", False),
    ],
)
def test_which_files_are_libraries(path: str, expected: bool) -> None:
    assert is_shared_library(path) is expected


def _files(layer: Path, *paths: str, content: str = "x") -> None:
    for relative in paths:
        path = layer / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_libraries_are_linked_relatively(tmp_path: Path) -> None:
    layer = tmp_path / "framework-x"
    _files(layer, f"{SITE}/a.libs/liba-1.so.2", f"{SITE}/b/libb.dylib", f"{SITE}/c/_c.abi3.so")
    exposed = expose_dynlibs(layer, exclude=(), site_dir=SITE)
    assert exposed == [f"{SITE}/a.libs/liba-1.so.2", f"{SITE}/b/libb.dylib"]
    dynlib = layer / layout.DYNLIB_DIR
    assert sorted(p.name for p in dynlib.iterdir()) == ["liba-1.so.2", "libb.dylib"]
    assert os.readlink(dynlib / "libb.dylib") == f"../../../{SITE}/b/libb.dylib"
    assert (dynlib / "libb.dylib").read_text() == "x"
    assert has_dynlibs(layer)


def test_site_packages_found_without_being_named(tmp_path: Path) -> None:
    _files(tmp_path, f"{SITE}/a.libs/liba.so", "lib/libpython3.11.so.1.0")
    assert expose_dynlibs(tmp_path) == [f"{SITE}/a.libs/liba.so"]


def test_different_libraries_with_one_name_are_an_error(tmp_path: Path) -> None:
    _files(tmp_path, f"{SITE}/a/libz.so.1")
    _files(tmp_path, f"{SITE}/b/libz.so.1", content="other")
    with pytest.raises(BuildError) as caught:
        expose_dynlibs(tmp_path, site_dir=SITE)
    message = str(caught.value)
    assert f"{SITE}/a/libz.so.1" in message
    assert f"{SITE}/b/libz.so.1" in message
    assert "dynlib_exclude" in message
    # Excluding one of them (a glob matched against the end of the path) resolves it.
    assert expose_dynlibs(tmp_path, exclude=["b/libz.so*"], site_dir=SITE) == [
        f"{SITE}/a/libz.so.1"
    ]


def test_identical_copies_share_one_link(tmp_path: Path) -> None:
    _files(tmp_path, f"{SITE}/numpy.libs/libq-1.so.0", f"{SITE}/scipy.libs/libq-1.so.0")
    assert expose_dynlibs(tmp_path, site_dir=SITE) == [f"{SITE}/numpy.libs/libq-1.so.0"]


def test_rerun_replaces_and_empty_removes(tmp_path: Path) -> None:
    _files(tmp_path, f"{SITE}/a/liba.so", f"{SITE}/a/libb.so")
    expose_dynlibs(tmp_path, site_dir=SITE)
    assert expose_dynlibs(tmp_path, exclude=["liba.so"], site_dir=SITE) == [f"{SITE}/a/libb.so"]
    assert [p.name for p in (tmp_path / layout.DYNLIB_DIR).iterdir()] == ["libb.so"]
    assert expose_dynlibs(tmp_path, exclude=["*.so"], site_dir=SITE) == []
    assert not (tmp_path / layout.DYNLIB_DIR).exists()
    assert not has_dynlibs(tmp_path)


def test_links_leading_out_of_the_layer_are_not_exposed(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    _files(tmp_path, "outside/libout.so")
    (layer / SITE / "a").mkdir(parents=True)
    (layer / SITE / "a/libout.so").symlink_to(tmp_path / "outside/libout.so")
    assert expose_dynlibs(layer, site_dir=SITE) == []


# venvstacks' documented dynlib_exclude behaviour (docs/design.rst, docs/file-formats.rst,
# examples/pytorch): a recursive glob checked against the end of the library's path.
@pytest.mark.parametrize(
    ("pattern", "path", "excluded"),
    [
        # `**` crosses any number of folders, so a folder pattern reaches every depth.
        ("triton/**", f"{SITE}/triton/backends/nvidia/lib/cupti/libcheckpoint.so", True),
        ("triton/**", f"{SITE}/triton/_C/libtriton.so", True),
        ("triton/**", f"{SITE}/nvidia/cu13/lib/libcheckpoint.so", False),
        ("PIL/**/libpng16.*", f"{SITE}/PIL/.dylibs/libpng16.16.dylib", True),
        ("PIL/**/libpng16.*", f"{SITE}/PIL/libpng16.16.dylib", True),
        ("PIL/**/libpng16.*", f"{SITE}/torchvision/.dylibs/libpng16.16.dylib", False),
        ("**/libz.so.1", f"{SITE}/a/b/c/libz.so.1", True),
        ("**", f"{SITE}/a/libz.so.1", True),
        # `*` stays within one name (and matches a leading dot).
        ("numpy.libs/*", f"{SITE}/numpy.libs/libq-1.so.0", True),
        ("numpy.libs/*", f"{SITE}/numpy.libs/sub/libq-1.so.0", False),
        ("sklearn/*/libomp.dylib", f"{SITE}/sklearn/.dylibs/libomp.dylib", True),
        ("sklearn/*/libomp.dylib", f"{SITE}/sklearn/a/b/libomp.dylib", False),
        ("*", f"{SITE}/a/b/libz.so.1", True),
        # Patterns without folders match the file name in any folder.
        ("libpng16.*", f"{SITE}/torchvision/.dylibs/libpng16.16.dylib", True),
        ("*.so", f"{SITE}/a/libz.so", True),
        ("*.dylib", f"{SITE}/a/libz.so", False),
        ("lib?.so", f"{SITE}/a/libz.so", True),
        ("libz.so.[0-9]", f"{SITE}/a/libz.so.1", True),
        ("libz.so.[!0-9]", f"{SITE}/a/libz.so.1", False),
        # Anchored at the end of the path, starting at a folder boundary.
        ("*.so", f"{SITE}/a/libz.so.1", False),
        ("libz.so", f"{SITE}/a/libz.so.1", False),
        ("z.so", f"{SITE}/a/libz.so", False),
        ("a/libz.so", f"{SITE}/xa/libz.so", False),
        ("a/libz.so", f"{SITE}/x/a/libz.so", True),
        ("site-packages/a/*", f"{SITE}/a/libz.so", True),
    ],
)
def test_dynlib_exclude_globs(pattern: str, path: str, excluded: bool) -> None:
    assert exclude_matcher([pattern])(path) is excluded


def test_a_folder_glob_excludes_libraries_at_every_depth(tmp_path: Path) -> None:
    _files(
        tmp_path,
        f"{SITE}/triton/backends/nvidia/lib/cupti/libcupti.so.12",
        f"{SITE}/triton/_C/libtriton.so",
        f"{SITE}/nvidia/cu13/lib/libcupti.so.13",
    )
    exposed = expose_dynlibs(tmp_path, exclude=["triton/**"], site_dir=SITE)
    assert exposed == [f"{SITE}/nvidia/cu13/lib/libcupti.so.13"]


def _fake_app(deployment: Path) -> Path:
    """An app whose bin/python is the test interpreter, with its launcher."""
    app = deployment / "app-x@1"
    (app / "bin").mkdir(parents=True)
    (app / "bin/python").symlink_to(sys.executable)
    lower = ["../framework-y@2/share/venv/dynlib", "../cpython@3.11/share/venv/dynlib"]
    assert write_app_python(app, lower) == DYNLIB_LAUNCHER
    return app


PRINT_ENV = "import json, os, sys; print(json.dumps([os.environ.get(sys.argv[1]), sys.argv[2:]]))"
VARIABLE = "DYLD_LIBRARY_PATH" if sys.platform == "darwin" else "LD_LIBRARY_PATH"


def _launch(launcher: Path, *, inherited: str | None = None) -> tuple[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if inherited is not None:
        env[VARIABLE] = inherited
    result = subprocess.run(
        ["sh", str(launcher), "-c", PRINT_ENV, VARIABLE, "an arg", "$HOME"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    value, args = json.loads(result.stdout)
    return value, args


def test_launcher_puts_lower_libraries_first(tmp_path: Path) -> None:
    deployment = tmp_path / "deploy"
    app = _fake_app(deployment)
    expected = (
        f"{deployment}/framework-y@2/share/venv/dynlib:{deployment}/cpython@3.11/share/venv/dynlib"
    )
    assert _launch(app / DYNLIB_LAUNCHER) == (expected, ["an arg", "$HOME"])
    assert _launch(app / DYNLIB_LAUNCHER, inherited="/opt/lib")[0] == f"{expected}:/opt/lib"
    assert os.access(app / DYNLIB_LAUNCHER, os.X_OK)


def test_launcher_follows_links_to_itself_and_moves(tmp_path: Path) -> None:
    app = _fake_app(tmp_path / "deploy")
    moved = (tmp_path / "deploy").rename(tmp_path / "moved")
    on_path = tmp_path / "on-path"
    on_path.mkdir()
    (on_path / "run-x").symlink_to(moved / "app-x@1" / DYNLIB_LAUNCHER)
    value, _ = _launch(on_path / "run-x")
    assert value.startswith(f"{moved}/framework-y@2/share/venv/dynlib:")
    assert not app.exists()


def test_app_python_without_lower_libraries(tmp_path: Path) -> None:
    app = _fake_app(tmp_path)
    assert write_app_python(app, []) == layout.venv_python()
    assert not (app / DYNLIB_LAUNCHER).exists()


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_launcher_text_per_platform(tmp_path: Path, platform: str) -> None:
    variable = "DYLD_LIBRARY_PATH" if platform == "darwin" else "LD_LIBRARY_PATH"
    with_dirs = postinstall.render_launcher(["../a@1/share/venv/dynlib"], "python", platform)
    without = postinstall.render_launcher([], "python", platform)
    assert f'{variable}="$layers_dir"/a@1/share/venv/dynlib${{{variable}:+' in with_dirs
    # No assignment at all rather than an empty entry, which would mean the current folder.
    assert "LIBRARY_PATH" not in without
    for text in (with_dirs, without):
        script = tmp_path / "launcher"
        script.write_text(text)
        assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
