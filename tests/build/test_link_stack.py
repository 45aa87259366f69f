"""A small layered stack built by hand from the layer-contract pieces, then moved and deployed.

The runtime is a copy of the CPython running the tests (its standard library, not its
site-packages); the venvs come from ``uv venv --relocatable``; packages are written straight
into site-packages or installed from a wheel made here, so no network is needed. A pyenv
CPython keeps finding its libpython through an absolute RUNPATH, so the copy runs from
anywhere on this host, which is all these tests need (true relocation is the runtime
providers' business).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest
import uv

from venvlayers import layout
from venvlayers.build.dynlib import DYNLIB_LAUNCHER, expose_dynlibs, has_dynlibs, write_app_python
from venvlayers.build.link import write_layer_links
from venvlayers.build.scripts import make_scripts_relocatable
from venvlayers.contract.layer_metadata import LayerMetadata, write_layer_metadata

pytestmark = pytest.mark.slow

FEATURE = f"{sys.version_info[0]}.{sys.version_info[1]}"
PY_VERSION = ".".join(map(str, sys.version_info[:3]))
SITE = layout.site_packages(FEATURE)
RUNTIME_PYTHON = layout.runtime_python(FEATURE)
RUNTIME = f"cpython@{FEATURE}"
POSTINSTALL = Path(__file__).parents[2] / "src/venvlayers/_injected/postinstall.py"
# Build name -> install target: the stack is built under build names and deployed under
# install targets, so postinstall.py has to relink every layer from its metadata.
TARGETS = {
    RUNTIME: RUNTIME,
    "framework-base": "framework-base@3",
    "framework-fw": "framework-fw@1",
    "framework-other": "framework-other",
    "app-demo": "app-demo@1",
}
# Lower layers of each venv in sys.path order (C3 order, runtime last).
LOWER = {
    "framework-base": [RUNTIME],
    "framework-fw": ["framework-base", RUNTIME],
    "framework-other": [RUNTIME],
    "app-demo": ["framework-fw", "framework-base", RUNTIME],
}
DEMO_APP = """\
import ctypes, json, os, sys

report = {"path": sys.path, "prefix": sys.prefix, "executable": sys.executable,
          "marker": getattr(sys, "fw_sitecustomize", None),
          "ld_library_path": os.environ.get("LD_LIBRARY_PATH", "")}
import app_pkg, fw_pkg, base_pkg, rt_pkg, fw_extra_mod
report["modules"] = [m.__file__ for m in (app_pkg, fw_pkg, base_pkg, rt_pkg, fw_extra_mod)]
try:
    import other_pkg
except ImportError:
    report["other_pkg"] = None
else:
    report["other_pkg"] = other_pkg.__file__
try:
    report["answer"] = ctypes.CDLL("libbasedemo.so.1").basedemo_answer()
except OSError as exc:
    report["answer"] = str(exc)
print(json.dumps(report))
"""


def _run(args: list[str | Path], env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _copy_local_runtime(dest: Path) -> None:
    """The running CPython's interpreter and standard library, without site-packages."""
    prefix = Path(sys.base_prefix)
    (dest / "bin").mkdir(parents=True)
    shutil.copy2((prefix / RUNTIME_PYTHON).resolve(), dest / RUNTIME_PYTHON)
    stdlib = f"lib/python{FEATURE}"
    big = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}

    def skip(folder: str, names: list[str]) -> set[str]:
        if Path(folder) != prefix / stdlib:
            return set()
        return {n for n in names if n in big or n.startswith("config-")}

    shutil.copytree(prefix / stdlib, dest / stdlib, symlinks=True, ignore=skip)
    for libpython in (prefix / "lib").glob("libpython*"):
        shutil.copy2(libpython, dest / "lib" / libpython.name, follow_symlinks=False)
    (dest / SITE).mkdir()


def _write(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def _wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel with a console script printing its interpreter's prefix."""
    info = "tinycli-1.0.dist-info"
    files = {
        "tinycli/__init__.py": "import sys\n\n\ndef main():\n    print(sys.prefix)\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: tinycli\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\ntinycli = tinycli:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / "tinycli-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def _uv(*args: str | Path) -> None:
    _run([uv.find_uv_bin(), *args])


def _compile_library(dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = dest.with_name("basedemo.c")
    source.write_text("int basedemo_answer(void) { return 42; }\n", encoding="utf-8")
    _run(["cc", "-shared", "-fPIC", "-Wl,-soname,libbasedemo.so.1", "-o", dest, source])
    source.unlink()


@pytest.fixture(scope="module")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every layer built side by side under its build name, as in ``_build/``."""
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler to make a real shared library")
    root = tmp_path_factory.mktemp("stack") / "_build"
    runtime = root / RUNTIME
    _copy_local_runtime(runtime)
    _write(runtime / SITE, {"rt_pkg.py": "NAME = 'runtime'\n"})
    wheel = _wheel(root.parent)
    _uv("pip", "install", "--no-config", "--no-index", "--no-cache", "--python",
        runtime / RUNTIME_PYTHON, wheel)  # fmt: skip
    assert make_scripts_relocatable(runtime) == ["bin/tinycli"]
    write_layer_metadata(
        runtime,
        LayerMetadata.for_runtime(python=RUNTIME_PYTHON, py_version=PY_VERSION, site_dir=SITE),
    )
    for name in LOWER:
        _uv("venv", "--relocatable", "--no-config", "--quiet", "--python",
            runtime / RUNTIME_PYTHON, root / name)  # fmt: skip
    _compile_library(root / "framework-base" / SITE / "base_pkg.libs/libbasedemo.so.1")
    _write(root / "framework-base" / SITE, {"base_pkg/__init__.py": ""})
    _write(
        root / "framework-fw" / SITE,
        {
            "fw_pkg/__init__.py": "",
            # A package's own sitecustomize must survive linking and still run.
            "sitecustomize.py": "import sys\nsys.fw_sitecustomize = 'fw'\n",
            "fw_extra.pth": "fw_extra\n",
            "fw_extra/fw_extra_mod.py": "",
        },
    )
    _uv("pip", "install", "--no-config", "--no-index", "--no-cache", "--python",
        root / "framework-fw" / layout.venv_python(), wheel)  # fmt: skip
    _write(root / "framework-other" / SITE, {"other_pkg.py": ""})
    _write(root / "app-demo" / SITE, {"app_pkg.py": "", "demo_app.py": DEMO_APP})
    for name, lower in LOWER.items():
        layer = root / name
        write_layer_links(layer, site_dir=SITE, lower_site_dirs=[f"../{n}/{SITE}" for n in lower])
        assert make_scripts_relocatable(layer) == []
        expose_dynlibs(layer, exclude=())
        dynlib_layers = [n for n in lower if has_dynlibs(root / n)]
        is_app = name.startswith("app-")
        app_python = (
            write_app_python(layer, [f"../{n}/{layout.DYNLIB_DIR}" for n in dynlib_layers])
            if is_app
            else None
        )
        meta = LayerMetadata.for_venv(
            py_version=PY_VERSION,
            base_python=f"../{RUNTIME}/{RUNTIME_PYTHON}",
            site_dir=SITE,
            pylib_dirs=[f"../{TARGETS[n]}/{SITE}" for n in lower],
            dynlib_dirs=[f"../{TARGETS[n]}/{layout.DYNLIB_DIR}" for n in dynlib_layers],
            launch_module="demo_app" if is_app else None,
            app_python=app_python,
        )
        write_layer_metadata(layer, meta)
    for layer in root.iterdir():
        shutil.copy2(POSTINSTALL, layer / layout.POSTINSTALL_SCRIPT)
    return root


def _demo(app_dir: Path) -> dict[str, object]:
    report = json.loads(_run([app_dir / DYNLIB_LAUNCHER, "-m", "demo_app"]))
    assert isinstance(report, dict)
    return report


def _site_order(path: list[str], root: Path, names: list[str]) -> list[int]:
    return [path.index(str(root / name / SITE)) for name in names]


def test_layers_link_in_the_build_folder_without_postinstall(build_root: Path) -> None:
    report = _demo(build_root / "app-demo")
    path = report["path"]
    assert isinstance(path, list)
    order = _site_order(path, build_root, ["app-demo", *LOWER["app-demo"]])
    assert order == sorted(order)
    assert len(path) == len(set(path)), "a folder was added twice"
    # The framework's .pth file ran: its folder follows the framework's site-packages.
    assert path.index(str(build_root / "framework-fw" / SITE / "fw_extra")) == order[1] + 1
    assert report["marker"] == "fw"
    assert report["other_pkg"] is None
    modules = report["modules"]
    assert isinstance(modules, list)
    for module, layer in zip(
        modules,
        ["app-demo", "framework-fw", "framework-base", RUNTIME, "framework-fw"],
        strict=True,
    ):
        assert Path(module).is_relative_to(build_root / layer / SITE)
    assert report["answer"] == 42
    assert (build_root / "framework-fw" / SITE / "sitecustomize.py").read_text() == (
        "import sys\nsys.fw_sitecustomize = 'fw'\n"
    )


def test_lower_layers_do_not_see_upper_or_undeclared_layers(build_root: Path) -> None:
    code = (
        "import importlib.util as u, json, sys;"
        "print(json.dumps([sys.path, [bool(u.find_spec(m)) for m in sys.argv[1:]]]))"
    )
    fw_python = build_root / "framework-fw" / layout.venv_python()
    path, found = json.loads(
        _run([fw_python, "-c", code, "app_pkg", "other_pkg", "base_pkg", "rt_pkg"])
    )
    assert found == [False, False, True, True]
    order = _site_order(path, build_root, ["framework-fw", "framework-base", RUNTIME])
    assert order == sorted(order)


def test_app_without_lower_libraries_runs_with_plain_python(tmp_path: Path) -> None:
    assert write_app_python(tmp_path, []) == layout.venv_python()
    assert not (tmp_path / DYNLIB_LAUNCHER).exists()


def _deploy_copy(build_root: Path, target: Path) -> None:
    """Copy the layers under their install targets, as archives would carry them."""
    for build_name, install_target in TARGETS.items():
        layer = target / install_target
        shutil.copytree(build_root / build_name, layer, symlinks=True)
        (layer / "pyvenv.cfg").unlink(missing_ok=True)
        for name in ("python", "python3", f"python{FEATURE}"):
            link = layer / "bin" / name
            if link.is_symlink():
                link.unlink()


def test_moved_and_renamed_stack_runs_after_postinstall(build_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "deployed here"
    _deploy_copy(build_root, target)
    python = target / RUNTIME / RUNTIME_PYTHON
    for install_target in [RUNTIME, "framework-base@3", "framework-fw@1", "framework-other"]:
        _run([python, target / install_target / layout.POSTINSTALL_SCRIPT])
    app = target / "app-demo@1"
    _run([python, app / layout.POSTINSTALL_SCRIPT])

    assert os.readlink(app / "bin/python") == f"../../{RUNTIME}/{RUNTIME_PYTHON}"
    assert os.readlink(app / "bin/python3") == "python"
    cfg = (app / "pyvenv.cfg").read_text()
    assert f"home = {target / RUNTIME / 'bin'}\n" in cfg
    assert f"version = {PY_VERSION}\n" in cfg
    assert list((app / SITE / "__pycache__").glob("demo_app.*.pyc")), "not byte-compiled"

    report = _demo(app)
    path = report["path"]
    assert isinstance(path, list)
    lower = ["app-demo@1", "framework-fw@1", "framework-base@3", RUNTIME]
    order = _site_order(path, target, lower)
    assert order == sorted(order)
    assert not [p for p in path if str(build_root) in p]
    assert report["prefix"] == str(app)
    assert report["marker"] == "fw"
    assert report["answer"] == 42
    assert report["ld_library_path"] == str(target / "framework-base@3" / layout.DYNLIB_DIR)

    for layer in (target / RUNTIME, target / "framework-fw@1"):
        assert _run([layer / "bin/tinycli"]).strip() == str(layer)

    # A second run changes nothing.
    before = {p: p.stat().st_mtime_ns for p in app.rglob("*") if not p.is_symlink()}
    _run([python, app / layout.POSTINSTALL_SCRIPT])
    after = {p: p.stat().st_mtime_ns for p in app.rglob("*") if not p.is_symlink()}
    assert before == after
