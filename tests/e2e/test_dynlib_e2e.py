"""Two packages of one layer ship different libraries with the same name: the stack builds and
runs, and only an application that needs that ambiguous library fails to build."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.build.test_dynlib_elf import CC, extension, library
from tests.e2e.helpers import venvlayers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF rules are Linux only"),
    pytest.mark.skipif(CC is None, reason="needs gcc to build shared libraries"),
]

TAG = "py3-none-manylinux_2_17_x86_64"
SPEC = """
[[tool.uv.index]]
name = "local"
url = "{index}"
default = true

[[runtimes]]
name = "cpython@3.11"
python_implementation = "cpython@3.11"
requirements = []
platforms = ["linux_x86_64"]

[[frameworks]]
name = "libs"
runtime = "cpython@3.11"
requirements = ["dupa", "dupb", "uniq"]

[[applications]]
name = "use"
launch_module = "use.py"
frameworks = ["libs"]
requirements = ["consumer"]

[[applications]]
name = "bad"
launch_module = "bad.py"
frameworks = ["libs"]
requirements = ["needsdup"]
"""
# Each package loads its own copy by path, as wheels vendoring a library do.
LOAD_OWN = """
import ctypes, pathlib
_lib = ctypes.CDLL(str(pathlib.Path(__file__).parent / "lib" / "libdup.so"))
def value():
    return _lib.dup_value()
"""
# The consumer's ELF file has no RUNPATH: its library comes from the layer beneath.
LOAD_PROBE = """
import ctypes, pathlib
def probe():
    return ctypes.CDLL(str(pathlib.Path(__file__).parent / "_probe.so")).probe()
"""


def make_wheel(folder: Path, name: str, files: dict[str, bytes]) -> None:
    dist_info = f"{name}-1.0.dist-info"
    members = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {TAG}\n"
        ).encode(),
    }
    record = []
    with zipfile.ZipFile(folder / f"{name}-1.0-{TAG}.whl", "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")


def write_wheels(folder: Path, work: Path) -> None:
    folder.mkdir()
    dup_a = library(work / "a/libdup.so", "libdup.so", 1)
    dup_b = library(work / "b/libdup.so", "libdup.so", 2)
    uniq = library(work / "u/libuniq.so.1", "libuniq.so.1", 7)
    probe = extension(work / "c/_probe.so", uniq)
    needs_dup = extension(work / "n/_probe.so", dup_a)
    make_wheel(
        folder,
        "dupa",
        {"dupa/__init__.py": LOAD_OWN.encode(), "dupa/lib/libdup.so": dup_a.read_bytes()},
    )
    make_wheel(
        folder,
        "dupb",
        {"dupb/__init__.py": LOAD_OWN.encode(), "dupb/lib/libdup.so": dup_b.read_bytes()},
    )
    make_wheel(
        folder, "uniq", {"uniq/__init__.py": b"", "uniq/lib/libuniq.so.1": uniq.read_bytes()}
    )
    make_wheel(
        folder,
        "consumer",
        {"consumer/__init__.py": LOAD_PROBE.encode(), "consumer/_probe.so": probe.read_bytes()},
    )
    make_wheel(
        folder,
        "needsdup",
        {"needsdup/__init__.py": LOAD_PROBE.encode(), "needsdup/_probe.so": needs_dup.read_bytes()},
    )


def write_index(wheels: Path) -> None:
    """A PEP 503 index of the wheels, under ``simple/``."""
    for wheel in sorted(wheels.glob("*.whl")):
        project = wheels / "simple" / wheel.name.split("-")[0]
        project.mkdir(parents=True)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        link = f'<a href="../../{wheel.name}#sha256={digest}">{wheel.name}</a>'
        (project / "index.html").write_text(f"<html><body>{link}</body></html>\n")


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on localhost.

    The build installs a wheel from the URL its lock records, and wheels locked from a
    folder (--local-wheels, find-links, file: indexes) are recorded by path instead.
    """
    handler = partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("dynlib-e2e")
    write_wheels(root / "wheels", root / "work")
    write_index(root / "wheels")
    with served(root / "wheels") as url:
        stack = root / "stack"
        stack.mkdir()
        (stack / "venvstacks.toml").write_text(SPEC.format(index=f"{url}/simple"))
        use = "import consumer, dupa, dupb\nprint(dupa.value(), dupb.value(), consumer.probe())\n"
        (stack / "use.py").write_text(use)
        (stack / "bad.py").write_text("import needsdup\nprint(needsdup.probe())\n")
        venvlayers("lock", stack)
        yield stack


def test_same_named_libraries_build_and_run(stack: Path) -> None:
    built = venvlayers("build", stack, "--include", "use")
    output = built.stdout + built.stderr
    assert "libdup.so" in output
    assert "site-packages/dupa/lib/libdup.so" in output
    assert "site-packages/dupb/lib/libdup.so" in output
    build = stack / "_build"
    dynlib = build / "framework-libs/share/venv/dynlib"
    assert sorted(p.name for p in dynlib.iterdir()) == ["libuniq.so.1"]
    app = build / "app-use"
    meta = json.loads((app / "share/venv/metadata/venvstacks_layer.json").read_text())
    result = subprocess.run(
        [str(app / meta["app_python"]), "-m", meta["launch_module"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "2", "107"]


def test_an_app_needing_the_ambiguous_library_fails_clearly(stack: Path) -> None:
    failed = venvlayers("build", stack, "--include", "bad", check=False)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    message = failed.stderr.strip().splitlines()[-1]
    assert "app-bad" in message
    assert "site-packages/needsdup/_probe.so" in message
    assert "'libdup.so'" in message
    assert "framework-libs/lib/python3.11/site-packages/dupa/lib/libdup.so" in message
    assert "framework-libs/lib/python3.11/site-packages/dupb/lib/libdup.so" in message
    assert not (stack / "_build/app-bad").exists()
