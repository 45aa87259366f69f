"""Make this layer ready to run where it was unpacked.

Run as ``<base_python> <layer>/postinstall.py`` with any Python 3.9 or newer; standard
library only. It reads ``share/venv/metadata/venvstacks_layer.json`` and, for a layered
environment (framework or application):

- refuses metadata whose paths leave the deployment folder (the layer's parent folder);
- writes ``pyvenv.cfg`` pointing at the base runtime's python;
- recreates ``bin/python`` (and ``python3``, ``python3.X``) as relative links to it;
- refreshes the files that put the lower layers on ``sys.path`` and, when the layer has one,
  the launcher that puts their shared libraries on the loader path, so layers renamed to
  their install targets find each other;

then byte-compiles the layer's site-packages, or a runtime's whole standard library (skipped when VENVLAYERS_NO_COMPILE=1).
Running it again changes nothing. Exit status 0 on success, 1 with one line on stderr.

venvlayers imports this module at build time too, so the build folder and a deployment get
their linking files from the same templates.
"""

from __future__ import annotations

import compileall
import json
import os
import shlex
import sys
import tempfile
from typing import Any, Dict, Optional, Sequence

METADATA_PATH = "share/venv/metadata/venvstacks_layer.json"
LINK_PTH = "_venvlayers_path.pth"
LINK_MODULE = "_venvlayers_path"
NO_COMPILE_ENV = "VENVLAYERS_NO_COMPILE"

REQUIRED_FIELDS = ("python", "py_version", "base_python", "site_dir")
OPTIONAL_TEXT_FIELDS = ("launch_module", "app_python", "postinstall_script")
# Fields holding one path or a list of paths, relative to the layer folder.
PATH_FIELDS = ("python", "base_python", "site_dir", "app_python", "postinstall_script")
PATH_LIST_FIELDS = ("pylib_dirs", "dynlib_dirs")

_LINK_MODULE_TEMPLATE = '''\
"""Put the layers beneath this one on sys.path; imported by {pth}.

Written by venvlayers; postinstall.py rewrites it from venvstacks_layer.json.
"""

import os
import site
import sys

# This file's folder (the layer's site-packages), relative to the layer folder.
SITE_DIR = {site_dir!r}
# The lower layers' site-packages relative to the layer folder, in sys.path order.
LOWER_SITE_DIRS = {lower_site_dirs!r}


def _add_lower_layers():
    layer_dir = os.path.dirname(os.path.abspath(__file__))
    for _part in SITE_DIR.split("/"):
        layer_dir = os.path.dirname(layer_dir)
    for relative in LOWER_SITE_DIRS:
        path = os.path.normpath(os.path.join(layer_dir, relative))
        known = set(os.path.normcase(p) for p in sys.path if isinstance(p, str))
        # addsitedir re-runs a folder's .pth files even when the folder is already on
        # sys.path, so a folder already there is left alone; a missing one is skipped so
        # that an incomplete deployment still starts.
        if os.path.normcase(path) in known or not os.path.isdir(path):
            continue
        site.addsitedir(path)


_add_lower_layers()
'''

_LAUNCHER_TEMPLATE = """\
#!/bin/sh
# Written by venvlayers; postinstall.py rewrites it from venvstacks_layer.json.
# Runs this layer's python with the shared libraries of the layers beneath it
# on the loader path.
script=$0
# Follow links to this file (e.g. from a folder on PATH) to the layer it lives in.
while [ -h "$script" ]; do
    target=$(readlink -- "$script")
    case $target in
        /*) script=$target ;;
        *) script=$(dirname -- "$script")/$target ;;
    esac
done
bin_dir=$(cd -P -- "$(dirname -- "$script")" && pwd -P) || exit 1
layer_dir=$(dirname -- "$bin_dir")
layers_dir=$(dirname -- "$layer_dir")
{setting}exec "$bin_dir"/{python} "$@"
"""


class Refusal(Exception):
    """The layer cannot be made ready; the message is the one line shown to the user."""


def render_link_module(site_dir: str, lower_site_dirs: Sequence[str]) -> str:
    """The text of ``_venvlayers_path.py`` for a layer whose site-packages is ``site_dir``."""
    return _LINK_MODULE_TEMPLATE.format(
        pth=LINK_PTH, site_dir=site_dir, lower_site_dirs=tuple(lower_site_dirs)
    )


def render_launcher(dynlib_dirs: Sequence[str], python: str, platform: str) -> str:
    """The text of a POSIX sh launcher putting ``dynlib_dirs`` on the loader path.

    ``dynlib_dirs`` are relative to the layer folder; ``python`` is the interpreter's name
    in the launcher's own folder.
    """
    variable = "DYLD_LIBRARY_PATH" if platform == "darwin" else "LD_LIBRARY_PATH"
    setting = ""
    if dynlib_dirs:
        # No empty entry: an empty entry in the loader path means the current folder.
        value = ":".join(_sh_path(path) for path in dynlib_dirs)
        setting = (
            variable + "=" + value + "${" + variable + ":+:$" + variable + "}\n"
            "export " + variable + "\n"
        )
    return _LAUNCHER_TEMPLATE.format(setting=setting, python=shlex.quote(python))


def _sh_path(relative: str) -> str:
    """``relative`` (to the layer folder) as a sh word; sibling layers without a ``..``."""
    relative = os.path.normpath(relative).replace(os.sep, "/")
    if relative.startswith("../") and ".." not in relative[3:].split("/"):
        return '"$layers_dir"/' + shlex.quote(relative[3:])
    return '"$layer_dir"/' + shlex.quote(relative)


def write_text_atomic(path: str, text: str, mode: Optional[int] = None) -> bool:
    """Write ``text`` through a temporary file and a rename; False when already up to date.

    Like ``venvlayers._fs``, which this file cannot import on a target. Replacing rather
    than editing also keeps a build folder intact when a layer was hardlinked from it.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            if stream.read() == text and (mode is None or _mode_of(path) == mode):
                return False
        existing_mode: Optional[int] = _mode_of(path)
    except (OSError, UnicodeDecodeError):
        existing_mode = None
    # mkstemp creates 0600 files, which other users of a deployment could not read.
    mode = mode or existing_mode or 0o644
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return True


def _mode_of(path: str) -> int:
    return os.stat(path).st_mode & 0o7777


def write_link_files(layer_dir: str, site_dir: str, lower_site_dirs: Sequence[str]) -> None:
    """Write ``_venvlayers_path.pth`` and ``_venvlayers_path.py`` into the layer's site-packages."""
    site_path = os.path.join(layer_dir, site_dir)
    write_text_atomic(os.path.join(site_path, LINK_PTH), "import " + LINK_MODULE + "\n")
    module = os.path.join(site_path, LINK_MODULE + ".py")
    if write_text_atomic(module, render_link_module(site_dir, lower_site_dirs)):
        # A cached .pyc keyed on mtime and size can outlive a same-size rewrite in the same
        # second; drop it so the new paths take effect.
        cache = os.path.join(site_path, "__pycache__")
        if os.path.isdir(cache):
            for name in os.listdir(cache):
                if name.startswith(LINK_MODULE + "."):
                    os.unlink(os.path.join(cache, name))


def write_launcher(path: str, dynlib_dirs: Sequence[str], python: str, platform: str) -> bool:
    """Write the shared-library launcher at ``path``; False when already up to date."""
    return write_text_atomic(path, render_launcher(dynlib_dirs, python, platform), mode=0o755)


def metadata_problem(data: Dict[str, Any]) -> Optional[str]:
    """What is wrong with the metadata's field types, or None (unknown fields are fine)."""
    for field in REQUIRED_FIELDS:
        if not isinstance(data.get(field), str) or not data[field]:
            return "field " + repr(field) + " is missing or empty"
    for field in OPTIONAL_TEXT_FIELDS:
        if data.get(field) is not None and not isinstance(data[field], str):
            return "field " + repr(field) + " must be a string"
    for field in PATH_LIST_FIELDS:
        values = data.get(field, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return "field " + repr(field) + " must be a list of strings"
    return None


def _read_metadata(layer_dir: str) -> Dict[str, Any]:
    path = os.path.join(layer_dir, METADATA_PATH)
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except OSError as exc:
        raise Refusal("cannot read " + METADATA_PATH + ": " + str(exc.strerror)) from exc
    except ValueError as exc:
        raise Refusal(METADATA_PATH + " is not valid JSON: " + str(exc)) from exc
    if not isinstance(data, dict):
        raise Refusal(METADATA_PATH + " must hold a JSON object")
    problem = metadata_problem(data)
    if problem:
        raise Refusal(METADATA_PATH + ": " + problem)
    return data


def check_paths_stay_inside(layer_dir: str, data: Dict[str, Any]) -> None:
    """Refuse any metadata path that is absolute or leads out of the deployment folder."""
    deployment = os.path.dirname(layer_dir)
    paths = [(f, data[f]) for f in PATH_FIELDS if data.get(f) is not None]
    paths.extend((f, value) for f in PATH_LIST_FIELDS for value in data.get(f, []))
    for field, value in paths:
        target = os.path.normpath(os.path.join(layer_dir, value))
        inside = os.path.commonpath([deployment, target]) == deployment
        if os.path.isabs(value) or not inside or target == deployment:
            raise Refusal(
                "refusing field " + repr(field) + " = " + repr(value) + " in " + METADATA_PATH
                + ": it must be a relative path inside the deployment folder " + deployment
            )  # fmt: skip


def write_pyvenv_cfg(layer_dir: str, home: str, py_version: str) -> None:
    """Point the venv at the base runtime, keeping any other settings already present."""
    path = os.path.join(layer_dir, "pyvenv.cfg")
    settings = {"home": home, "include-system-site-packages": "false", "version": py_version}
    try:
        with open(path, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key not in settings:
            settings[key] = py_version if key == "version_info" else value.strip()
    write_text_atomic(path, "".join(k + " = " + v + "\n" for k, v in settings.items()))


def _link(path: str, target: str) -> None:
    """Make ``path`` a symlink to ``target``, replacing whatever was there in one rename."""
    if os.path.islink(path) and os.readlink(path) == target:
        return
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp-link")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def link_base_python(layer_dir: str, python: str, base_python: str, py_version: str) -> None:
    """Recreate the venv's interpreter links as relative links to the base python."""
    venv_python = os.path.join(layer_dir, python)
    bin_dir = os.path.dirname(venv_python)
    os.makedirs(bin_dir, exist_ok=True)
    _link(venv_python, os.path.relpath(base_python, bin_dir))
    name = os.path.basename(venv_python)
    feature = ".".join(py_version.split(".")[:2])
    for alias in ("python3", "python" + feature):
        if alias != name:
            _link(os.path.join(bin_dir, alias), name)


def byte_compile(folder: str) -> None:
    """Byte-compile ``folder``; a file that does not compile (e.g. test data) is no failure."""
    if os.environ.get(NO_COMPILE_ENV, "") not in ("", "0") or not os.path.isdir(folder):
        return
    try:
        compileall.compile_dir(folder, quiet=2, workers=0)
    except (OSError, ImportError, NotImplementedError):
        # Some hosts cannot start worker processes (no /dev/shm, sandboxes).
        compileall.compile_dir(folder, quiet=2, workers=1)


def prepare_layer(layer_dir: str) -> None:
    """Everything this script does, for the layer at ``layer_dir``; raises :class:`Refusal`."""
    data = _read_metadata(layer_dir)
    check_paths_stay_inside(layer_dir, data)
    site_dir = data["site_dir"]
    if data["base_python"] != data["python"]:
        base_python = os.path.normpath(os.path.join(layer_dir, data["base_python"]))
        if not os.path.isfile(base_python):
            raise Refusal(
                "base_python " + base_python + " not found: deploy the runtime layer first"
            )
        lower_site_dirs = data.get("pylib_dirs", [])
        for relative in lower_site_dirs:
            if not os.path.isdir(os.path.join(layer_dir, relative)):
                raise Refusal(
                    "lower layer folder " + relative + " (pylib_dirs) not found: "
                    "deploy the layers beneath this one first"
                )
        write_pyvenv_cfg(layer_dir, os.path.dirname(base_python), data["py_version"])
        if os.name != "nt":
            link_base_python(layer_dir, data["python"], base_python, data["py_version"])
        write_link_files(layer_dir, site_dir, lower_site_dirs)
        app_python = data.get("app_python")
        if app_python and app_python != data["python"] and os.name != "nt":
            write_launcher(
                os.path.join(layer_dir, app_python),
                data.get("dynlib_dirs", []),
                os.path.basename(data["python"]),
                sys.platform,
            )
        byte_compile(os.path.join(layer_dir, site_dir))
    else:
        # Archives carry no bytecode; a runtime compiles its whole standard library here,
        # since apps usually cannot write into a shared runtime to cache it themselves.
        byte_compile(os.path.join(layer_dir, os.path.dirname(site_dir)))


def main() -> int:
    layer_dir = os.path.dirname(os.path.abspath(__file__))
    try:
        prepare_layer(layer_dir)
    except Refusal as exc:
        sys.stderr.write("postinstall.py: " + os.path.basename(layer_dir) + ": " + str(exc) + "\n")
        return 1
    except OSError as exc:
        sys.stderr.write(
            "postinstall.py: " + os.path.basename(layer_dir) + ": failed: " + str(exc) + "\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
