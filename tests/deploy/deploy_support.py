"""Synthetic published outputs for the deploy tests, written without the publish stage.

Two kinds of stacks:

- :func:`fake_stack`: tiny layers whose "runtime" is a shell script running this machine's
  Python with the layer's site-packages on PYTHONPATH. Milliseconds to make; enough to test
  every deploy rule (checks, order, skipping, kills, locks, gc, verify).
- :func:`real_stack` (slow tests): a copy of this machine's CPython prefix as the runtime and
  real ``uv venv --relocatable`` framework and app layers, linked by the real postinstall.py.

Archives are written here with tarfile/zipfile + zstandard directly, following the publish
selection rules of :func:`venvlayers.contract.layer_files.scan_layer` and carrying the layer manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import uv
import zstandard

from venvlayers import layout
from venvlayers._fs import sha256_file
from venvlayers._injected.postinstall import write_link_files
from venvlayers.contract import ArchiveFields, LayerKind, LayerPublication, write_stack_metadata
from venvlayers.contract.layer_files import EntryKind, scan_layer
from venvlayers.contract.manifest import build_manifest, manifest_bytes
from venvlayers.deploy import DeployResult, deploy

POSTINSTALL = Path(__file__).resolve().parents[2] / "src/venvlayers/_injected/postinstall.py"
PY_VERSION = ".".join(map(str, sys.version_info[:3]))
FEATURE = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"lib/python{FEATURE}/site-packages"
RUNTIME = f"cpython@{FEATURE}"
FORMATS = (".tar.zst", ".tar.xz", ".tar.gz", ".zip")
LOCKED_AT = "2025-01-01T00:00:00Z"
# An archive member as the tests craft it: its header and its data.
Entry = tuple[tarfile.TarInfo, bytes]


# --- comparing folders ----------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    """Everything in ``folder``: a change to any file, link or folder shows."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_symlink():
            state[key] = "link:" + os.readlink(path)
        elif path.is_dir():
            state[key] = "dir"
        else:
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


# --- archives -------------------------------------------------------------------------------


@contextlib.contextmanager
def tar_writer(path: Path) -> Iterator[tarfile.TarFile]:
    """A tar writer for ``path`` compressed as its extension says."""
    if path.name.endswith(".tar.zst"):
        with (
            path.open("wb") as raw,
            zstandard.ZstdCompressor(level=3).stream_writer(raw) as stream,
            tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            yield tar
        return
    mode = {".tar.xz": "w:xz", ".tar.gz": "w:gz"}["." + ".".join(path.name.split(".")[-2:])]
    with tarfile.open(path, mode=mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        yield tar


def tar_entry(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", link: str = "",
              mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_700_000_000
    return info, data


def write_tar(path: Path, entries: Iterable[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A (possibly hostile) tar archive holding exactly ``entries``."""
    with tar_writer(path) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def read_tar_entries(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The members of a tar.zst archive with their data, to craft variants of it."""
    with (
        path.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        entries = []
        for info in tar:
            data = tar.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            entries.append((info, data))
        return entries


def _layer_entries(layer_dir: Path, top: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The members an archive of ``layer_dir`` holds, manifest included."""
    entries = [tar_entry(top, tarfile.DIRTYPE)]
    for entry in scan_layer(layer_dir, strict=True):
        name = f"{top}/{entry.path}"
        if entry.kind is EntryKind.DIRECTORY:
            entries.append(tar_entry(name, tarfile.DIRTYPE))
        elif entry.kind is EntryKind.SYMLINK:
            entries.append(tar_entry(name, tarfile.SYMTYPE, link=entry.link, mode=0o777))
        else:
            entries.append(
                tar_entry(
                    name, data=entry.source.read_bytes(), mode=0o755 if entry.executable else 0o644
                )
            )
    manifest = manifest_bytes(build_manifest(layer_dir))
    entries.append(tar_entry(f"{top}/{layout.LAYER_MANIFEST}", data=manifest))
    return entries


def write_zip(path: Path, entries: Iterable[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            if info.isdir():
                zinfo = zipfile.ZipInfo(info.name + "/")
                zinfo.external_attr = (stat.S_IFDIR | 0o755) << 16
                zf.writestr(zinfo, b"")
                continue
            zinfo = zipfile.ZipInfo(info.name)
            if info.issym():
                zinfo.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(zinfo, info.linkname.encode())
            elif info.ischr():
                zinfo.external_attr = (stat.S_IFCHR | 0o644) << 16
                zf.writestr(zinfo, b"")
            else:
                zinfo.external_attr = (stat.S_IFREG | info.mode) << 16
                zf.writestr(zinfo, data)
    return path


def write_archive(path: Path, entries: Iterable[tuple[tarfile.TarInfo, bytes]]) -> Path:
    if path.name.endswith(".zip"):
        return write_zip(path, entries)
    return write_tar(path, entries)


def archive_layer(layer_dir: Path, path: Path, top: str) -> Path:
    return write_archive(path, _layer_entries(layer_dir, top))


# --- published output -----------------------------------------------------------------------


def publication(
    out: Path,
    archive: Path,
    *,
    layer_name: str,
    install_target: str,
    runtime_layer: str = RUNTIME,
    required_layers: Sequence[str] = (),
    lock_version: int = 1,
    launch_module: str | None = None,
) -> LayerPublication:
    return LayerPublication(
        layer_name=layer_name,
        install_target=install_target,
        requirements_hash="sha256:" + "0" * 64,
        lock_version=lock_version,
        locked_at=LOCKED_AT,
        runtime_layer=runtime_layer,
        python_implementation=f"cpython@{PY_VERSION}",
        bound_to_implementation=layer_name != runtime_layer,
        required_layers=tuple(required_layers),
        app_launch_module=launch_module,
        app_launch_module_hash=None if launch_module is None else "sha256:" + "1" * 64,
        kind=(
            LayerKind.APPLICATION
            if launch_module is not None
            else LayerKind.RUNTIME
            if layer_name == runtime_layer
            else LayerKind.FRAMEWORK
        ),
        archive=ArchiveFields(
            archive_build=1,
            archive_name=archive.relative_to(out).as_posix(),
            target_platform="linux_x86_64",
            archive_size=archive.stat().st_size,
            archive_hashes={"sha256": sha256_file(archive)},
        ),
    )


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def runtime_meta() -> dict[str, Any]:
    python = f"bin/python{FEATURE}"
    return {
        "python": python,
        "py_version": PY_VERSION,
        "base_python": python,
        "site_dir": SITE,
        "pylib_dirs": [],
        "dynlib_dirs": [],
        "launch_module": None,
        "app_python": None,
        "postinstall_script": layout.POSTINSTALL_SCRIPT,
    }


def venv_meta(lower: Sequence[str], launch_module: str | None = None) -> dict[str, Any]:
    """``lower``: install targets beneath, sys.path order, runtime last."""
    return {
        "python": "bin/python",
        "py_version": PY_VERSION,
        "base_python": f"../{lower[-1]}/bin/python{FEATURE}",
        "site_dir": SITE,
        "pylib_dirs": [f"../{target}/{SITE}" for target in lower],
        "dynlib_dirs": [],
        "launch_module": launch_module,
        "app_python": "bin/python" if launch_module else None,
        "postinstall_script": layout.POSTINSTALL_SCRIPT,
    }


# --- the fake stack (fast) ------------------------------------------------------------------

# Runs this machine's python with the calling layer's site-packages (and those of the layers
# beneath it, from a file written next to this script) on PYTHONPATH: $0 is the path the
# layer's bin/python link was called by. -B: the apps write no bytecode into the layers,
# which verify would report as files added since deploy.
_FAKE_PYTHON = """\
#!/bin/sh
layer=$(cd -- "$(dirname -- "$0")/.." && pwd)
paths="$layer/{site}"
if [ -f "$layer/lower-paths.txt" ]; then
    while read -r lower; do paths="$paths:$layer/$lower"; done < "$layer/lower-paths.txt"
fi
PYTHONPATH="$paths" exec {real} -S -B "$@"
"""

_FAKE_APP = """\
import sys

import {helper}

print("{app} {version} says", {helper}.greeting(), "args=" + ",".join(sys.argv[1:]))
if "--exit" in sys.argv:
    sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]))
"""


def _write_layer(layer_dir: Path, meta: dict[str, Any], files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = layer_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    write_json(layer_dir / layout.LAYER_METADATA, meta)
    shutil.copy2(POSTINSTALL, layer_dir / layout.POSTINSTALL_SCRIPT)
    if meta["base_python"] != meta["python"]:
        # As the build does: the files that put the lower layers on sys.path.
        write_link_files(os.fspath(layer_dir), meta["site_dir"], meta["pylib_dirs"])
    return layer_dir


def fake_stack(
    root: Path,
    *,
    version: int = 1,
    fmt: str = ".tar.zst",
    apps: Sequence[str] = ("hello", "other"),
    changed_apps: Sequence[str] = (),
) -> Path:
    """Publish a fake stack into ``root/published-v<version>``; returns that folder.

    ``framework-greet`` is versioned: its install target is ``framework-greet@<version>``.
    Every app is rebuilt on it (so its content changes with ``version``).
    """
    src = root / f"src-v{version}"
    out = root / f"published-v{version}"
    if src.exists():
        shutil.rmtree(src)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    framework = f"framework-greet@{version}"
    runtime_dir = _write_layer(
        src / RUNTIME,
        runtime_meta(),
        {f"{SITE}/runtime_marker.py": "RUNTIME = True\n"},
    )
    fake_python = runtime_dir / f"bin/python{FEATURE}"
    fake_python.parent.mkdir()
    fake_python.write_text(
        _FAKE_PYTHON.format(site=SITE, real=os.path.realpath(sys.executable)),
        encoding="utf-8",
    )
    fake_python.chmod(0o755)
    _write_layer(
        src / framework,
        venv_meta([RUNTIME]),
        {
            f"{SITE}/greet.py": f"def greeting():\n    return 'greetings v{version}'\n",
            "lower-paths.txt": f"../{RUNTIME}/{SITE}\n",
        },
    )
    for app in apps:
        extra = " (changed)" if app in changed_apps else ""
        _write_layer(
            src / f"app-{app}",
            venv_meta([framework, RUNTIME], launch_module=app),
            {
                f"{SITE}/{app}.py": _FAKE_APP.format(
                    helper="greet", app=app, version=f"v{version}{extra}"
                ),
                "lower-paths.txt": f"../{framework}/{SITE}\n../{RUNTIME}/{SITE}\n",
            },
        )
    pubs = [
        publication(out, archive_layer(src / RUNTIME, out / f"{RUNTIME}{fmt}", RUNTIME),
                    layer_name=RUNTIME, install_target=RUNTIME),
        publication(out, archive_layer(src / framework, out / f"{framework}{fmt}", framework),
                    layer_name="framework-greet", install_target=framework,
                    lock_version=version),
    ]  # fmt: skip
    for app in apps:
        target = f"app-{app}"
        archive = archive_layer(src / target, out / f"{target}{fmt}", target)
        pubs.append(
            publication(out, archive, layer_name=target, install_target=target,
                        required_layers=[framework], launch_module=app)
        )  # fmt: skip
    write_stack_metadata(out, pubs)
    return out


def stacks_in_every_format(root: Path) -> dict[str, Path]:
    """The fake stack published in each archive format under ``root``, by format."""
    return {fmt: fake_stack(root / fmt.strip("."), fmt=fmt) for fmt in FORMATS}


def entries_of(stacks: dict[str, Path], install_target: str) -> list[Entry]:
    """The real members of a layer of :func:`stacks_in_every_format` (read from its .tar.zst
    stack: the same in every format), so a crafted archive deploys unless it is refused."""
    return read_tar_entries(archive_of(stacks[".tar.zst"], install_target))


def private_copy(stacks: dict[str, Path], fmt: str, where: Path) -> Path:
    """A copy of the stack published in ``fmt``, in ``where``, free to change."""
    return Path(shutil.copytree(stacks[fmt], where / "source"))


def replace_archive(
    out: Path, install_target: str, entries: Iterable[tuple[tarfile.TarInfo, bytes]]
) -> None:
    """Swap a layer's archive for crafted ``entries`` and publish matching size and sha256."""
    index_path = out / "__venvstacks__/venvstacks.json"
    index = json.loads(index_path.read_text())
    for layers in index["layers"].values():
        for entry in layers:
            if entry["install_target"] == install_target:
                archive = out / entry["archive_name"]
                archive.unlink()
                write_archive(archive, entries)
                entry["archive_size"] = archive.stat().st_size
                entry["archive_hashes"] = {"sha256": sha256_file(archive)}
    rewrite_index(out, index)


def set_published(
    source: Path, install_target: str, *, size: int, sha256: str | None = None
) -> None:
    """Publish ``size`` and ``sha256`` (when given) for the layer's archive, wherever the
    metadata says it."""
    meta = source / "__venvstacks__"
    for path in [meta / "venvstacks.json", meta / "env_metadata" / f"{install_target}.json"]:
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        entries = (
            [e for layers in data["layers"].values() for e in layers]
            if "layers" in data
            else [data]
        )
        for entry in entries:
            if entry["install_target"] == install_target:
                entry["archive_size"] = size
                if sha256 is not None:
                    entry["archive_hashes"] = {"sha256": sha256}
        path.write_text(json.dumps(data, indent=2))


def rewrite_index(out: Path, index: dict[str, Any]) -> None:
    """Write ``index`` as venvstacks.json and each entry as its env_metadata file, as a
    publisher (or an attacker who recomputes everything) would."""
    for layers in index["layers"].values():
        for entry in layers:
            layer_file = out / f"__venvstacks__/env_metadata/{entry['install_target']}.json"
            write_json(layer_file, entry)
    (out / "__venvstacks__/venvstacks.json").write_text(json.dumps(index, indent=2))


def archive_of(out: Path, install_target: str) -> Path:
    index = json.loads((out / "__venvstacks__/venvstacks.json").read_text())
    for layers in index["layers"].values():
        for entry in layers:
            if entry["install_target"] == install_target:
                return out / str(entry["archive_name"])
    raise KeyError(install_target)


# --- running things -------------------------------------------------------------------------

DEPLOY_SCRIPT = """\
import json
import os
import signal
import sys
from pathlib import Path
from venvlayers.deploy import deploy, places
from venvlayers.errors import VenvLayersError

options = json.loads(sys.argv[1])

def report(message):
    print(message, file=sys.stderr, flush=True)

def hook(step, install_target):
    # Die at the step asked for (of the layer named, when one is): as a kill -9 would.
    wanted, _, layer = (options.get("kill_at") or "").partition(":")
    if step == wanted and (not layer or layer == install_target):
        os.kill(os.getpid(), signal.SIGKILL)

if not options.get("exchange", True):
    # As on a system without an atomic exchange of two names.
    places.exchange = lambda first, second: False

try:
    result = deploy(
        Path(sys.argv[2]), Path(sys.argv[3]), apps=sys.argv[4:], report=report,
        compile_bytecode=options.get("compile", False), step_hook=hook,
    )
except VenvLayersError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
print("deployed=" + ",".join(result.deployed))
print("skipped=" + ",".join(result.skipped))
"""


def deploy_command(
    source: Path,
    target: Path,
    *apps: str,
    kill_at: str | None = None,
    exchange: bool = True,
    compile_bytecode: bool = False,
) -> list[str]:
    """A child process deploying ``apps``; ``kill_at`` (``step[:install_target]``) makes it
    SIGKILL itself there through the deploy's step hook; ``exchange=False`` takes away the
    atomic exchange of two names, as on systems that lack one."""
    options = {"kill_at": kill_at, "exchange": exchange, "compile": compile_bytecode}
    return [sys.executable, "-c", DEPLOY_SCRIPT, json.dumps(options), str(source), str(target),
            *apps]  # fmt: skip


def deploy_in_subprocess(
    source: Path,
    target: Path,
    *apps: str,
    kill_at: str | None = None,
    exchange: bool = True,
    compile_bytecode: bool = False,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        deploy_command(
            source, target, *apps, kill_at=kill_at, exchange=exchange,
            compile_bytecode=compile_bytecode,
        ),
        capture_output=True,
        text=True,
    )  # fmt: skip


def quick_deploy(source: Path, target: Path, **options: Any) -> DeployResult:
    """Deploy without byte-compiling: the fake layers have nothing worth compiling."""
    return deploy(source, target, **{"compile_bytecode": False, **options})


def run_layer_python(target: Path, app: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a deployed app the way ``venvlayers run`` does, capturing its output."""
    from venvlayers.deploy.run import command_for

    return subprocess.run(command_for(target, app, args), capture_output=True, text=True)


# --- the real stack (slow) ------------------------------------------------------------------

_RUNTIME_SKIP = {
    "test", "site-packages", "__pycache__", "idlelib", "tkinter", "turtledemo", "ensurepip",
    "lib2to3", "pydoc_data", "config-" + FEATURE + "-x86_64-linux-gnu",
}  # fmt: skip


def copy_runtime(dest: Path) -> Path:
    """This machine's CPython prefix without tests, caches and site-packages (it still runs:
    its libpython is found through the original RUNPATH)."""
    base = Path(sys.base_prefix)
    dest.mkdir(parents=True)
    (dest / "bin").mkdir()
    shutil.copy2(base / f"bin/python{FEATURE}", dest / f"bin/python{FEATURE}")
    os.symlink(f"python{FEATURE}", dest / "bin/python3")
    (dest / "lib").mkdir()
    for lib in (base / "lib").glob("libpython*"):
        if lib.is_symlink():
            os.symlink(os.readlink(lib), dest / "lib" / lib.name)
        elif not lib.name.endswith(".a"):
            shutil.copy2(lib, dest / "lib" / lib.name)

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _RUNTIME_SKIP or n.endswith(".pyc")}

    shutil.copytree(base / f"lib/python{FEATURE}", dest / f"lib/python{FEATURE}", ignore=ignore)
    (dest / SITE).mkdir()
    (dest / SITE / "runtime_marker.py").write_text("RUNTIME = True\n")
    return dest


def _run(args: Sequence[str | os.PathLike[str]], **kwargs: Any) -> None:
    subprocess.run([os.fspath(a) for a in args], check=True, capture_output=True, **kwargs)


def _uv_venv(dest: Path, python: Path) -> None:
    _run([uv.find_uv_bin(), "venv", "--relocatable", "--no-config", "--quiet",
          "--python", python, dest])  # fmt: skip


REAL_FRAMEWORK_MODULE = """\
def greeting():
    return "real greetings"


def fail():
    raise RuntimeError("failing on purpose")
"""

REAL_APP_MODULE = """\
import sys

import greet_real

if "--fail" in sys.argv:
    greet_real.fail()
print("{app} says", greet_real.greeting(), "from", sys.prefix, "args=" + ",".join(sys.argv[1:]))
sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]) if "--exit" in sys.argv else 0)
"""


def real_stack(root: Path, *, framework_version: int = 1, fmt: str = ".tar.zst") -> Path:
    """Build real layers side by side in ``root/build`` and publish them to ``root/published``.

    The runtime is built once per ``root`` and reused by later calls.
    """
    build = root / "build"
    out = root / f"published-{framework_version}"
    runtime_dir = build / RUNTIME
    if not runtime_dir.exists():
        copy_runtime(runtime_dir)
        write_json(runtime_dir / layout.LAYER_METADATA, runtime_meta())
        shutil.copy2(POSTINSTALL, runtime_dir / layout.POSTINSTALL_SCRIPT)
    python = runtime_dir / f"bin/python{FEATURE}"
    framework = f"framework-greet@{framework_version}"
    layers: list[tuple[str, str, list[str], str | None]] = [
        (framework, "framework-greet", [RUNTIME], None),
        ("app-hello", "app-hello", [framework, RUNTIME], "hello"),
        ("app-other", "app-other", [framework, RUNTIME], "other"),
    ]
    for target, _name, lower, launch in layers:
        layer_dir = build / target
        if layer_dir.exists():
            shutil.rmtree(layer_dir)
        _uv_venv(layer_dir, python)
        site = layer_dir / SITE
        if launch is None:
            (site / "greet_real.py").write_text(REAL_FRAMEWORK_MODULE)
        else:
            (site / f"{launch}.py").write_text(
                REAL_APP_MODULE.format(app=f"{launch} v{framework_version}")
            )
        write_json(layer_dir / layout.LAYER_METADATA, venv_meta(lower, launch))
        shutil.copy2(POSTINSTALL, layer_dir / layout.POSTINSTALL_SCRIPT)
        # As the build does: link the layer to the layers beneath (writes the .pth files).
        _run([python, layer_dir / layout.POSTINSTALL_SCRIPT], env={"VENVLAYERS_NO_COMPILE": "1"})
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pubs = [
        publication(out, archive_layer(runtime_dir, out / f"{RUNTIME}{fmt}", RUNTIME),
                    layer_name=RUNTIME, install_target=RUNTIME)
    ]  # fmt: skip
    for target, name, lower, launch in layers:
        archive = archive_layer(build / target, out / f"{target}{fmt}", target)
        pubs.append(
            publication(out, archive, layer_name=name, install_target=target,
                        required_layers=lower[:-1], launch_module=launch,
                        lock_version=framework_version if launch is None else 1)
        )  # fmt: skip
    write_stack_metadata(out, pubs)
    return out


def copy_tree(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    return dest


# --- deltas and the content store -----------------------------------------------------------


def add_delta(old: Path, new: Path, layer_name: str) -> Path:
    """Publish in ``new`` a delta of ``layer_name`` against its version in ``old``, as
    `publish --delta-from` does (manifests beside the archives too); returns its archive."""
    from venvlayers.contract import MANIFESTS_DIR, DeltaFields, read_stack_metadata
    from venvlayers.contract.delta import DELTA_DESCRIPTOR, DeltaDescriptor, delta_content

    _, old_layers = read_stack_metadata(old)
    _, new_layers = read_stack_metadata(new)
    base = next(layer for layer in old_layers if layer.layer_name == layer_name)
    layer = next(layer for layer in new_layers if layer.layer_name == layer_name)
    assert base.archive is not None and layer.archive is not None
    top = layer.install_target
    manifest_name = f"{top}/{layout.LAYER_MANIFEST}"

    old_entries = dict(
        (info.name, data) for info, data in read_tar_entries(old / base.archive.archive_name)
    )
    old_manifest = old_entries[f"{base.install_target}/{layout.LAYER_MANIFEST}"]
    entries = read_tar_entries(new / layer.archive.archive_name)
    new_manifest = dict((info.name, data) for info, data in entries)[manifest_name]
    content = delta_content(old_manifest, new_manifest)
    base_sha = base.archive.archive_hashes["sha256"]
    folders = {f"{top}/{p}".rsplit("/", 1)[0] for p in content.added}
    chosen = [
        (info, data)
        for info, data in entries
        if info.name == top
        or (info.isdir() and any(f == info.name or f.startswith(info.name + "/") for f in folders))
        or info.name.removeprefix(top + "/") in content.added
    ]
    descriptor = DeltaDescriptor(base.install_target, base_sha, content.removed).to_bytes()
    chosen.append(tar_entry(manifest_name, data=new_manifest))
    chosen.append(tar_entry(f"{top}/{DELTA_DESCRIPTOR}", data=descriptor))
    archive = write_tar(new / f"{top}.delta-{base_sha[:12]}.tar.zst", chosen)
    beside = new / MANIFESTS_DIR / f"{top}.json"
    beside.parent.mkdir(parents=True, exist_ok=True)
    beside.write_bytes(new_manifest)
    delta = DeltaFields(
        archive_name=archive.name,
        archive_size=archive.stat().st_size,
        archive_sha256=sha256_file(archive),
        base_install_target=base.install_target,
        base_archive_sha256=base_sha,
        manifest_sha256=hashlib.sha256(new_manifest).hexdigest(),
    )
    write_stack_metadata(
        new, [la.with_deltas((delta,)) if la is layer else la for la in new_layers]
    )
    return archive


def store_entries(target: Path) -> dict[str, Path]:
    """The content store's entries by file name."""
    store = target / ".venvlayers/store"
    return {p.name: p for p in store.glob("??/*")} if store.is_dir() else {}


def disk_use(folder: Path) -> int:
    """Bytes of blocks used under ``folder``, each inode counted once (as ``du``)."""
    seen, total = set(), 0
    for path in [folder, *folder.rglob("*")]:
        info = path.lstat()
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total
