"""Relocating the real local CPython 3.11 and 3.12 (found by discovery, never hard-coded).

Each version is prepared once per test session; the tests copy it around and use it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from venvlayers.runtime import PreparedRuntime, copy_runtime, prepare_runtime
from venvlayers.runtime.discovery import discover
from venvlayers.runtime.pbs_archives import host_triples
from venvlayers.spec.model import PythonImplementation

pytestmark = pytest.mark.slow

VERSIONS = ("3.11", "3.12")
STDLIB_CHECK = "import ssl, sqlite3, ctypes, zlib, lzma, bz2, venv, sys; print(sys.prefix)"


def clean_env(**extra: str) -> dict[str, str]:
    hidden = ("PYTHONHOME", "PYTHONPATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in hidden and not k.startswith("UV_")}
    env.update(extra)
    return env


def run(*args: str | Path, **extra: str) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=clean_env(**extra)
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


@pytest.fixture(scope="session")
def runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runtime-cache")


@pytest.fixture(scope="session", params=VERSIONS)
def prepared(request: pytest.FixtureRequest, runtime_cache: Path) -> PreparedRuntime:
    version = str(request.param)
    if not discover(version):
        pytest.skip(f"no local CPython {version} on this machine")
    return prepare_runtime(
        PythonImplementation("cpython", version), source="local", cache_dir=runtime_cache
    )


def original_prefixes(prepared: PreparedRuntime) -> set[str]:
    """Where the original lives and where it was configured to live."""
    facts = json.loads(
        run(
            prepared.origin,
            "-I",
            "-c",
            "import json, sys, sysconfig;"
            " print(json.dumps([sys.base_prefix, sysconfig.get_config_var('prefix')]))",
        )
    )
    return {p for f in facts for p in (f, os.path.realpath(f))}


@pytest.mark.parametrize("folder", ["first", "second/nested"])
def test_copies_run_from_their_own_folder(
    prepared: PreparedRuntime, tmp_path: Path, folder: str
) -> None:
    dest = tmp_path / folder
    copy_runtime(prepared, dest)
    python = dest / prepared.python
    assert run(python, "-c", STDLIB_CHECK) == str(dest)
    assert run(python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))") == (
        f"{dest}/lib"
    )

    venv = tmp_path / "venv"
    # ensurepip (slow) once per version; the second copy makes a venv without pip.
    with_pip = folder == "first"
    run(python, "-m", "venv", *([] if with_pip else ["--without-pip"]), venv)
    assert run(venv / "bin/python", "-c", "import sys; print(sys.base_prefix)") == str(dest)
    if with_pip:
        assert run(venv / "bin/python", "-m", "pip", "--version").startswith("pip ")


def test_no_text_file_names_the_original_prefix(prepared: PreparedRuntime) -> None:
    prefixes = [p.encode() for p in original_prefixes(prepared)]
    scanned = 0
    offenders = []
    for path in prepared.root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        scanned += 1
        if any(p in data for p in prefixes):
            offenders.append(path.relative_to(prepared.root).as_posix())
    assert scanned > 500
    assert offenders == []


def test_runtime_is_lean(prepared: PreparedRuntime) -> None:
    feature = prepared.version.rsplit(".", 1)[0]
    stdlib = prepared.root / "lib" / f"python{feature}"
    assert (stdlib / "os.py").is_file()
    assert not (stdlib / "test").exists()
    assert not (stdlib / "idlelib" / "idle_test").exists()
    assert not list(prepared.root.rglob("__pycache__"))
    assert not list(prepared.root.rglob("*.a"))
    assert sorted(p.name for p in (stdlib / "site-packages").iterdir() if "pip" not in p.name) == [
        "README.txt"
    ]


def test_moved_copy_still_runs_with_its_tools(prepared: PreparedRuntime, tmp_path: Path) -> None:
    first = tmp_path / "a" / "runtime"
    copy_runtime(prepared, first)
    moved = tmp_path / "b" / "moved-runtime"
    moved.parent.mkdir()
    first.rename(moved)
    feature = prepared.version.rsplit(".", 1)[0]
    assert run(moved / prepared.python, "-c", STDLIB_CHECK) == str(moved)
    assert run(moved / "bin" / f"python{feature}-config", "--prefix") == os.path.realpath(moved)
    assert run(moved / "bin/pip3", "--version").startswith("pip ")
    assert run(moved / "bin/python3", "-c", "print('via symlink')") == "via symlink"


def test_libpython_is_the_copy_own(prepared: PreparedRuntime, tmp_path: Path) -> None:
    if shutil.which("ldd") is None:
        pytest.skip("no ldd")
    dest = tmp_path / "rt"
    copy_runtime(prepared, dest)
    linked = [
        line for line in run("ldd", dest / prepared.python).splitlines() if "libpython" in line
    ]
    if not linked:
        pytest.skip("statically linked interpreter")
    location = linked[0].split(" => ")[1].split(" (")[0]
    assert os.path.realpath(location).startswith(f"{os.path.realpath(dest)}/lib/")
    runpath = (
        run("patchelf", "--print-rpath", dest / prepared.python)
        if shutil.which("patchelf")
        else "$ORIGIN/../lib"
    )
    assert runpath == "$ORIGIN/../lib"


def test_second_prepare_is_served_from_the_cache(
    prepared: PreparedRuntime, runtime_cache: Path
) -> None:
    messages: list[str] = []
    feature = prepared.version.rsplit(".", 1)[0]
    again = prepare_runtime(
        PythonImplementation("cpython", feature),
        source="local",
        cache_dir=runtime_cache,
        report=messages.append,
    )
    assert again == prepared
    assert len(messages) == 1 and "using the cached" in messages[0]


def tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel made here, so installing needs no package index."""
    files = {
        "tinypkg/__init__.py": b"VALUE = 42\n",
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("tinypkg-1.0.dist-info/RECORD,,")
    wheel = folder / "tinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("tinypkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def test_uv_installs_into_the_runtime_and_into_a_venv_on_it(
    prepared: PreparedRuntime, tmp_path: Path
) -> None:
    import uv

    uv_bin = uv.find_uv_bin()
    wheel = tiny_wheel(tmp_path)
    env = {"UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_PYTHON_DOWNLOADS": "never"}
    runtime = tmp_path / "runtime"
    copy_runtime(prepared, runtime)
    python = runtime / prepared.python
    feature = prepared.version.rsplit(".", 1)[0]

    run(uv_bin, "pip", "install", "--python", python, "--no-index", "--offline", wheel, **env)
    assert (runtime / f"lib/python{feature}/site-packages/tinypkg/__init__.py").is_file()
    assert run(python, "-c", "import tinypkg; print(tinypkg.VALUE)") == "42"

    venv = tmp_path / "venv"
    run(uv_bin, "venv", "--python", python, venv, **env)
    run(
        uv_bin,
        "pip",
        "install",
        "--python",
        venv / "bin/python",
        "--no-index",
        "--offline",
        wheel,
        **env,
    )
    out = run(
        venv / "bin/python", "-c", "import sys, tinypkg; print(sys.base_prefix, tinypkg.VALUE)"
    )
    assert out == f"{runtime} 42"


@pytest.mark.parametrize("prepared", ["3.11"], indirect=True)
def test_standalone_layout_archive_of_a_real_runtime(
    prepared: PreparedRuntime, tmp_path: Path
) -> None:
    """The archive source, end to end with a real interpreter in the install_only layout."""
    name = f"cpython-{prepared.version}+20240107-{host_triples()[0]}-install_only_stripped.tar.gz"
    archive = tmp_path / name
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(prepared.root, arcname="python")
    from_archive = prepare_runtime(
        PythonImplementation("cpython", prepared.version),
        source="archive",
        source_path=str(archive),
        cache_dir=tmp_path / "cache",
    )
    assert (from_archive.source, from_archive.version) == ("archive", prepared.version)
    assert run(from_archive.root / from_archive.python, "-c", STDLIB_CHECK) == str(
        from_archive.root
    )
