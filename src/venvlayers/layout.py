"""Where things live inside a layer folder: the deployed-layer contract's paths.

Every path here is relative to the layer's own folder, with ``/`` separators, except the
conventional names around a stack specification at the end.
"""

from __future__ import annotations

LAYER_METADATA = "share/venv/metadata/venvstacks_layer.json"
# Extension: per-file manifest (path, size, sha256) written into every published layer.
LAYER_MANIFEST = "share/venv/metadata/venvlayers_manifest.json"
# Extension: the layer's software bill of materials (CycloneDX JSON), written by build.
LAYER_SBOM = "share/venv/metadata/sbom.cdx.json"
DYNLIB_DIR = "share/venv/dynlib"
POSTINSTALL_SCRIPT = "postinstall.py"
# Build-time only: recreated by postinstall.py on the target, never published.
BUILD_ONLY_FILES = ("pyvenv.cfg",)
# Build record of a layer, kept beside the layer folder in the build dir.
BUILD_RECORD_SUFFIX = ".build.json"


def site_packages(py_feature_version: str, *, windows: bool = False) -> str:
    """The site-packages folder of a runtime or venv for Python ``X.Y``."""
    if windows:
        return "Lib/site-packages"
    return f"lib/python{py_feature_version}/site-packages"


def scripts_dir(*, windows: bool = False) -> str:
    return "Scripts" if windows else "bin"


def runtime_python(py_feature_version: str, *, windows: bool = False) -> str:
    """The interpreter inside a runtime layer."""
    return "python.exe" if windows else f"bin/python{py_feature_version}"


def venv_python(*, windows: bool = False) -> str:
    """The interpreter inside a framework or application venv."""
    return "Scripts/python.exe" if windows else "bin/python"


# Around a stack specification: its file name, and the default build and publish folders
# beside it.
SPEC_FILENAME = "venvstacks.toml"
DEFAULT_BUILD_DIR = "_build"
DEFAULT_OUTPUT_DIR = "_artifacts"
