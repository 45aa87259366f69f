"""``share/venv/metadata/venvstacks_layer.json``: the layer metadata written and read back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from venvlayers import layout
from venvlayers.contract.layer_metadata import (
    LayerMetadata,
    read_layer_metadata,
    write_layer_metadata,
)
from venvlayers.errors import MetadataError

SITE = "lib/python3.11/site-packages"


def _app() -> LayerMetadata:
    return LayerMetadata.for_venv(
        py_version="3.11.7",
        base_python="../cpython@3.11/bin/python3.11",
        site_dir=SITE,
        pylib_dirs=[f"../framework-sklearn@2/{SITE}", f"../cpython@3.11/{SITE}"],
        dynlib_dirs=["../cpython@3.11/share/venv/dynlib"],
        launch_module="classify",
        app_python="bin/python-dynlib",
    )


def test_application_metadata_file(tmp_path: Path) -> None:
    write_layer_metadata(tmp_path, _app())
    data = json.loads((tmp_path / layout.LAYER_METADATA).read_text())
    assert data == {
        "python": "bin/python",
        "py_version": "3.11.7",
        "base_python": "../cpython@3.11/bin/python3.11",
        "site_dir": SITE,
        "pylib_dirs": [f"../framework-sklearn@2/{SITE}", f"../cpython@3.11/{SITE}"],
        "dynlib_dirs": ["../cpython@3.11/share/venv/dynlib"],
        "launch_module": "classify",
        "app_python": "bin/python-dynlib",
        "postinstall_script": "postinstall.py",
    }
    assert read_layer_metadata(tmp_path) == _app()
    assert _app().is_layered


def test_runtime_and_framework_metadata() -> None:
    runtime = LayerMetadata.for_runtime(python="bin/python3.11", py_version="3.11.7", site_dir=SITE)
    assert runtime.base_python == "bin/python3.11"
    assert not runtime.is_layered
    assert "launch_module" not in runtime.to_json()
    framework = LayerMetadata.for_venv(
        py_version="3.11.7", base_python="../cpython@3.11/bin/python3.11", site_dir=SITE
    )
    assert framework.app_python is None
    assert "app_python" not in framework.to_json()


def test_app_python_defaults_to_the_venv_python() -> None:
    app = LayerMetadata.for_venv(
        py_version="3.11.7", base_python="../rt/python.exe", site_dir="Lib/site-packages",
        launch_module="demo", windows=True,
    )  # fmt: skip
    assert app.python == "Scripts/python.exe"
    assert app.app_python == "Scripts/python.exe"


def test_py_version_must_be_complete() -> None:
    with pytest.raises(MetadataError, match=re.escape("py_version '3.11' must be X.Y.Z")):
        LayerMetadata.for_runtime(python="bin/python3.11", py_version="3.11", site_dir=SITE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_python": None}, "field 'base_python' is missing"),
        ({"pylib_dirs": "../x"}, "field 'pylib_dirs' must be a list of strings"),
        ({"launch_module": 3}, "field 'launch_module' must be a string"),
    ],
)
def test_invalid_metadata_names_the_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = {**_app().to_json(), **change}
    (tmp_path / layout.LAYER_METADATA).parent.mkdir(parents=True)
    (tmp_path / layout.LAYER_METADATA).write_text(json.dumps(data))
    with pytest.raises(MetadataError, match=message):
        read_layer_metadata(tmp_path)


def test_unknown_fields_are_ignored() -> None:
    assert LayerMetadata.from_json({**_app().to_json(), "future_field": 1}) == _app()


def test_missing_file_names_the_layer(tmp_path: Path) -> None:
    with pytest.raises(
        MetadataError, match=f"{tmp_path.name}: cannot read {layout.LAYER_METADATA}"
    ):
        read_layer_metadata(tmp_path)
