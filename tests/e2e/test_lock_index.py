"""Locking against the real package index (small packages, three platforms)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from venvlayers.errors import LockError
from venvlayers.lock import lock_stack, read_layer_lock
from venvlayers.spec import StackSpec, load_stack

pytestmark = [pytest.mark.slow, pytest.mark.network]

FIXTURES = Path(__file__).resolve().parents[1] / "lock" / "fixtures" / "lock"
RUNTIME = """
[[runtimes]]
name = "cpython@3.11"
python_implementation = "cpython@3.11"
requirements = [{requirements}]
platforms = ["linux_x86_64", "win_amd64", "macosx_arm64"]
"""


def write_stack(folder: Path, runtime_requirements: str, frameworks: str) -> StackSpec:
    folder.mkdir(parents=True, exist_ok=True)
    text = RUNTIME.format(requirements=runtime_requirements) + textwrap.dedent(frameworks)
    (folder / "venvstacks.toml").write_text(text, encoding="utf-8")
    return load_stack(folder)


def framework(name: str, requirements: str) -> str:
    return f'\n[[frameworks]]\nname = "{name}"\nruntime = "cpython@3.11"\nrequirements = [{requirements}]\n'


def test_numpy_beneath_scipy_is_provided_from_below(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, '"numpy"', framework("sci", '"scipy"'))
    lock_stack(stack)
    runtime = read_layer_lock(stack, stack.layer("cpython@3.11"))
    sci = read_layer_lock(stack, stack.layer("framework-sci"))
    runtime_numpy = next(p for p in runtime.packages if p.name == "numpy")
    sci_numpy = next(p for p in sci.packages if p.name == "numpy")
    assert sci_numpy.version == runtime_numpy.version
    assert sci_numpy.provided_by == "cpython@3.11"
    assert {p.name for p in sci.own_packages} == {"scipy"}
    # Every platform has its wheel, and only wheels for these platforms are kept.
    scipy = next(p for p in sci.packages if p.name == "scipy")
    tags = sorted(w.name.rsplit("-", 1)[1] for w in scipy.wheels)
    assert len(tags) == 3 and tags[-1] == "win_amd64.whl", tags
    text = sci.lock_path.read_text(encoding="utf-8")
    assert '[packages.tool.venvlayers]\nprovided_by = "cpython@3.11"' in text


def test_conflict_inside_a_layer_names_it_and_quotes_uv(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, "", framework("web", '"idna<3", "idna>=3.5"'))
    with pytest.raises(LockError) as caught:
        lock_stack(stack)
    message = str(caught.value)
    assert message == (
        "framework 'web': cannot be locked: conflicting requirements: the layer requires"
        " idna<3 and idna>=3.5"
    )


def test_conflict_with_the_runtime_names_the_layer_and_the_pin(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, '"numpy>=2"', framework("old", '"numpy<2"'))
    with pytest.raises(LockError) as caught:
        lock_stack(stack)
    message = str(caught.value)
    assert message.startswith("framework 'old': cannot be locked: conflicting requirements:")
    assert len(message.splitlines()) == 2
    numpy = next(p for p in read_layer_lock(stack, stack.layer("cpython@3.11")).packages)
    assert f"pinned by lower layers: numpy=={numpy.version} (from cpython@3.11)" in message


def test_every_input_format_locks_and_keeps_its_pins(tmp_path: Path) -> None:
    sources = ["requirements.txt", "pyproject.toml", "poetry.lock", "Pipfile.lock", "uv.lock",
               "pylock.toml"]  # fmt: skip
    frameworks = ""
    for number, source in enumerate(sources):
        folder = tmp_path / f"src{number}"
        folder.mkdir()
        shutil.copy(FIXTURES / source, folder / source)
        frameworks += (
            framework(f"from{number}", "") + f'requirements_from = ["src{number}/{source}"]\n'
        )
    stack = write_stack(tmp_path, "", frameworks)
    lock_stack(stack)
    for number, source in enumerate(sources):
        lock = read_layer_lock(stack, stack.layer(f"framework-from{number}"))
        pins = {p.name: p for p in lock.own_packages}
        assert {name: p.version for name, p in pins.items()} == {
            "six": "1.16.0", "idna": "3.7", "packaging": "24.1", "colorama": "0.4.6",
        }, source  # fmt: skip
        assert pins["colorama"].marker == (
            "sys_platform == 'win32' and platform_machine == 'AMD64'"
        ), source


def test_missing_wheels_list_the_gaps_and_the_platforms_that_work(tmp_path: Path) -> None:
    # uvloop publishes no Windows wheels.
    stack = write_stack(tmp_path, "", framework("loop", '"uvloop"'))
    with pytest.raises(LockError) as caught:
        lock_stack(stack)
    message = str(caught.value)
    assert message.startswith("framework 'loop': no wheel for these packages on these platforms")
    assert "uvloop==" in message and ": win_amd64\n" in message
    assert 'platforms = ["linux_x86_64", "macosx_arm64"]' in message
