"""A deploy host loads no lock, build, spec or runtime code (the pipeline runs one way)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import venvlayers.deploy

FORBIDDEN = ("lock", "build", "spec", "runtime", "publish", "cli")


def deploy_modules() -> list[str]:
    folder = Path(venvlayers.deploy.__file__).parent
    return ["venvlayers.deploy"] + [
        f"venvlayers.deploy.{info.name}" for info in pkgutil.iter_modules([str(folder)])
    ]


def test_importing_every_deploy_module_loads_no_other_stage() -> None:
    modules = deploy_modules()
    assert len(modules) > 5
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "import venvlayers.deploy as d\n"
        "for name in d.__all__: getattr(d, name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    stages = sorted(
        m for m in loaded if m.startswith("venvlayers.") and m.split(".")[1] in FORBIDDEN
    )
    assert stages == [], f"deploy loads {stages}"
