"""venvlayers deploys what venvstacks 0.8 itself publishes, as it is.

venvstacks 0.8.0b2 (installed with the pinned versions of ../shared/bench) locks, builds and
publishes a small stack: a runtime with no requirements and two tiny apps, one with a
support module. Its output has tar.xz archives with no file manifest inside, runtime
entries without ``required_layers``, ``app_support_modules`` on apps, and links from each
venv to its runtime. venvlayers then deploys it, runs both apps, verifies (clean, then a
modified file), removes one app and collects its layer.

The runtime is the local CPython made relocatable by venvlayers and handed to venvstacks as
an ``install_only`` archive (GitHub, where venvstacks downloads runtimes, is not reachable
from here); the helpers are the comparison benchmark's (bench/_venvstacks_setup.py).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, venvlayers

pytestmark = pytest.mark.slow

sys.path.insert(0, str(REPO / "bench"))
from _bench_proc import StepFailed, run_logged  # noqa: E402
from _bench_tools import CONSTRAINTS, find_uv, venvstacks_tool  # noqa: E402
from _venvstacks_setup import pack_local_runtime, venvstacks_command  # noqa: E402

FEATURE = f"{sys.version_info[0]}.{sys.version_info[1]}"
RUNTIME = f"cpython@{FEATURE}"


def _write_stack(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "hello.py").write_text("import helper\n\nprint('hello says', helper.WORD)\n")
    (folder / "helper.py").write_text("WORD = 'hi'\n")
    (folder / "other").mkdir()
    (folder / "other/__init__.py").write_text("")
    (folder / "other/__main__.py").write_text("print('other runs')\n")
    spec = folder / "venvstacks.toml"
    spec.write_text(
        textwrap.dedent(f"""\
            [[runtimes]]
            name = "{RUNTIME}"
            python_implementation = "cpython@{version}"
            requirements = []

            [[applications]]
            name = "hello"
            launch_module = "hello.py"
            support_modules = ["helper.py"]
            runtime = "{RUNTIME}"
            requirements = []

            [[applications]]
            name = "other"
            launch_module = "other"
            runtime = "{RUNTIME}"
            requirements = []
        """)
    )
    return spec


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The stack published by venvstacks itself: its output folder."""
    if not (REPO / CONSTRAINTS).is_file():
        pytest.skip(f"{CONSTRAINTS} is missing (the versions venvstacks 0.8 runs with)")
    work = tmp_path_factory.mktemp("venvstacks")
    log = work / "setup.log"
    try:
        uv = find_uv(REPO, work, log)
        python = venvstacks_tool(REPO, work, uv, log)
        archive, version = pack_local_runtime(
            sys.executable,
            RUNTIME,
            cache_dir=work / "cache",
            output_dir=work / "runtime",
            log=log,
        )
        spec = _write_stack(work / "stack", version)
        output = work / "artifacts"
        # venvstacks leaves a copy of the runtime archive in the temp folder.
        env = {"TMPDIR": str(work / "tmp")}
        (work / "tmp").mkdir()
        for args in (("lock", spec), ("build", spec), ("publish", "--output-dir", output, spec)):
            run_logged(
                venvstacks_command(python, archive, *args),
                log=log,
                what=f"venvstacks {args[0]}",
                env=env,
            )
    except StepFailed as exc:
        pytest.fail(str(exc))
    yield output


def test_venvstacks_output_is_as_described(published: Path) -> None:
    """The differences from venvlayers' own output this test exists for."""
    index = json.loads((published / "__venvstacks__/venvstacks.json").read_text())
    runtime = index["layers"]["runtimes"][0]
    assert "required_layers" not in runtime
    assert runtime["archive_name"].endswith(".tar.xz")
    hello = next(a for a in index["layers"]["applications"] if a["layer_name"] == "app-hello")
    assert hello["app_support_modules"][0]["name"] == "helper"


def test_deploy_run_verify_remove_and_gc(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    venvlayers("deploy", published, "--target", target)
    assert venvlayers("run", target, "hello").stdout == "hello says hi\n"
    assert venvlayers("run", target, "other").stdout == "other runs\n"
    clean = venvlayers("verify", target)
    assert "3 layers match their deployment record" in clean.stdout
    # Running the apps changed nothing verify sees; a modified file it does.
    helper = target / "app-hello/lib" / f"python{FEATURE}" / "site-packages/helper.py"
    helper.write_text("WORD = 'owned'\n")
    drift = venvlayers("verify", target, check=False)
    assert drift.returncode == 1
    assert f"lib/python{FEATURE}/site-packages/helper.py" in drift.stdout
    assert venvlayers("run", target, "hello").stdout == "hello says owned\n"
    venvlayers("remove", target, "hello")
    assert not (target / "app-hello").exists()
    assert venvlayers("run", target, "other").stdout == "other runs\n"
    venvlayers("gc", target)
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == sorted(
        [RUNTIME, "app-other"]
    )
    assert venvlayers("verify", target).returncode == 0
    assert os.listdir(target / ".venvlayers/layers")
