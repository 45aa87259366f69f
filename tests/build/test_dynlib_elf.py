"""Shared-library exposure decided from the ELF files themselves (Linux).

The libraries are small real ones, built here with the C compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from venvlayers import layout
from venvlayers.build.dynlib import check_lower_needs, expose_dynlibs
from venvlayers.build.elf import read_elf_dynamic
from venvlayers.errors import BuildError

SITE = "lib/python3.11/site-packages"
CC = shutil.which("gcc")

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF rules are Linux only"),
    pytest.mark.skipif(CC is None, reason="needs gcc to build shared libraries"),
]


def cc(output: Path, source: str, *flags: str) -> Path:
    """Compile ``source`` (C) into the shared library ``output``."""
    assert CC is not None
    output.parent.mkdir(parents=True, exist_ok=True)
    source_file = output.parent / f".{output.name}.c"
    source_file.write_text(textwrap.dedent(source))
    subprocess.run(
        [CC, "-shared", "-fPIC", "-o", str(output), str(source_file), *flags],
        check=True,
        capture_output=True,
    )
    source_file.unlink()
    return output


def library(output: Path, soname: str, value: int) -> Path:
    symbol = soname.split(".")[0].removeprefix("lib")
    return cc(output, f"int {symbol}_value(void) {{ return {value}; }}\n", f"-Wl,-soname,{soname}")


def extension(output: Path, needs: Path, *flags: str) -> Path:
    """A module-like ELF file that calls into ``needs`` (so NEEDED names its SONAME)."""
    info = read_elf_dynamic(needs)
    assert info is not None and info.soname
    symbol = info.soname.split(".")[0].removeprefix("lib")
    source = f"int {symbol}_value(void);\nint probe(void) {{ return {symbol}_value() + 100; }}\n"
    return cc(output, source, f"-L{needs.parent}", f"-l:{needs.name}", *flags)


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    """torch 2.14's shape: two different libcheckpoint.so, and one versioned library."""
    layer = tmp_path / "framework-torch"
    site = layer / SITE
    library(site / "nvidia/cu13/lib/libcheckpoint.so", "libcheckpoint.so", 1)
    library(site / "triton/backends/nvidia/lib/cupti/libcheckpoint.so", "libcheckpoint.so", 2)
    # The file name differs from the SONAME: NEEDED entries record the SONAME.
    uniq = library(site / "nvidia/cu13/lib/libuniq.so.1.0", "libuniq.so.1", 7)
    # An identical copy elsewhere is the same library, not a second one.
    (site / "other.libs").mkdir()
    shutil.copy(uniq, site / "other.libs/libuniq.so.1.0")
    return layer


def expose(layer: Path, **options: object) -> list[str]:
    messages: list[str] = []
    expose_dynlibs(layer, report=messages.append, **options)  # type: ignore[arg-type]
    return messages


def test_same_named_libraries_in_one_layer_warn_once_and_expose_neither(lower: Path) -> None:
    messages = expose(lower)
    assert len(messages) == 1
    assert "libcheckpoint.so" in messages[0]
    assert f"{SITE}/nvidia/cu13/lib/libcheckpoint.so" in messages[0]
    assert f"{SITE}/triton/backends/nvidia/lib/cupti/libcheckpoint.so" in messages[0]
    dynlib = lower / layout.DYNLIB_DIR
    assert sorted(p.name for p in dynlib.iterdir()) == ["libuniq.so.1", "libuniq.so.1.0"]
    assert os.readlink(dynlib / "libuniq.so.1") == f"../../../{SITE}/nvidia/cu13/lib/libuniq.so.1.0"


def test_upper_extension_needing_an_ambiguous_library_fails(lower: Path) -> None:
    expose(lower)
    upper = lower.parent / "app-x"
    extension(upper / SITE / "needy/_ext.so", lower / SITE / "nvidia/cu13/lib/libcheckpoint.so")
    with pytest.raises(BuildError) as caught:
        check_lower_needs(upper, [lower], layer_name="app-x")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("app-x: ")
    assert f"{SITE}/needy/_ext.so" in message
    assert "'libcheckpoint.so'" in message
    assert f"framework-torch/{SITE}/nvidia/cu13/lib/libcheckpoint.so" in message
    assert f"framework-torch/{SITE}/triton/backends/nvidia/lib/cupti/libcheckpoint.so" in message
    assert "dynlib_exclude" in message


def test_a_library_present_once_is_exposed_by_soname_and_loads(lower: Path) -> None:
    expose(lower)
    upper = lower.parent / "app-x"
    # Also needs libm, a system library no layer holds: that is not checked.
    ext = extension(
        upper / SITE / "user/_ext.so",
        lower / SITE / "nvidia/cu13/lib/libuniq.so.1.0",
        "-Wl,--no-as-needed",
        "-lm",
    )
    info = read_elf_dynamic(ext)
    assert info is not None and "libm.so.6" in info.needed
    messages: list[str] = []
    check_lower_needs(upper, [lower], layer_name="app-x", report=messages.append)
    assert messages == []
    # What the application launcher does: the lower dynlib folder on the search path.
    load = "import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).probe())"
    env = {**os.environ, "LD_LIBRARY_PATH": str(lower / layout.DYNLIB_DIR)}
    result = subprocess.run(
        [sys.executable, "-c", load, str(ext)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "107"


@pytest.mark.parametrize("tags", ["--enable-new-dtags", "--disable-new-dtags"])
def test_needs_resolved_by_the_files_own_runpath_are_fine(lower: Path, tags: str) -> None:
    expose(lower)
    upper = lower.parent / "app-x"
    own = library(upper / SITE / "own/vendored/libcheckpoint.so", "libcheckpoint.so", 3)
    ext = extension(upper / SITE / "own/_ext.so", own, f"-Wl,{tags},-rpath,$ORIGIN/vendored")
    info = read_elf_dynamic(ext)
    assert info is not None and info.search_path == ("$ORIGIN/vendored",)
    check_lower_needs(upper, [lower], layer_name="app-x")


def test_a_need_another_lower_layer_exposes_is_resolved(lower: Path) -> None:
    expose(lower)
    runtime = lower.parent / "cpython@3.11"
    single = library(runtime / SITE / "cp/libcheckpoint.so", "libcheckpoint.so", 4)
    expose(runtime)
    upper = lower.parent / "app-x"
    extension(upper / SITE / "needy/_ext.so", single)
    check_lower_needs(upper, [lower, runtime], layer_name="app-x")


def test_a_need_excluded_below_is_reported_not_fatal(lower: Path) -> None:
    expose(lower, exclude=["libuniq*"])
    upper = lower.parent / "app-x"
    extension(upper / SITE / "user/_ext.so", lower / SITE / "nvidia/cu13/lib/libuniq.so.1.0")
    messages: list[str] = []
    check_lower_needs(upper, [lower], layer_name="app-x", report=messages.append)
    assert len(messages) == 1
    assert "'libuniq.so.1'" in messages[0] and f"{SITE}/user/_ext.so" in messages[0]
