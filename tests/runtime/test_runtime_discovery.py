"""Finding local interpreters: explicit path, pyenv, uv-managed, PATH (in that order)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime import discovery
from venvlayers.runtime._base import ProviderContext
from venvlayers.runtime.local import LocalProvider
from venvlayers.spec.model import PythonImplementation


def fake_python(path: Path, version: str, *, prefix: Path | None = None) -> Path:
    """A shell script that answers the interpreter probe like CPython ``version`` would."""
    prefix = prefix if prefix is not None else path.parent.parent
    facts = {
        "implementation": "cpython",
        "version": version,
        "prefix": str(prefix),
        "base_prefix": str(prefix),
        "executable": str(path),
        "build_prefix": str(prefix),
        "stdlib": f"{prefix}/lib/python{version.rsplit('.', 1)[0]}",
        "include": f"{prefix}/include/python{version.rsplit('.', 1)[0]}",
        "ldlibrary": "",
        "shared": False,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(facts)}\nEOF\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def failing_command(path: Path) -> Path:
    """Like a pyenv shim of an inactive version: exits non-zero."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty pyenv root, uv dir and PATH folder, isolated from the real machine."""
    folders = {name: tmp_path / name for name in ("pyenv", "uv", "path", "home")}
    for folder in folders.values():
        folder.mkdir()
    (folders["pyenv"] / "versions").mkdir()
    monkeypatch.setenv("PYENV_ROOT", str(folders["pyenv"]))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(folders["uv"]))
    monkeypatch.setenv("PATH", f"{folders['path']}{os.pathsep}/bin")
    monkeypatch.setenv("HOME", str(folders["home"]))
    return folders


def test_pyenv_then_uv_then_path_with_duplicates_listed_once(hosts: dict[str, Path]) -> None:
    fake_python(hosts["pyenv"] / "versions/3.11.7/bin/python3.11", "3.11.7")
    fake_python(hosts["pyenv"] / "versions/3.12.1/bin/python3.12", "3.12.1")
    (hosts["pyenv"] / "versions/pypy3.10-7.3.12").mkdir()  # not a CPython version folder
    fake_python(hosts["uv"] / "cpython-3.11.9-linux-x86_64-gnu/bin/python3.11", "3.11.9")
    fake_python(
        hosts["uv"] / "cpython-3.13.0+freethreaded-linux-x86_64-gnu/bin/python3.13", "3.13.0"
    )
    elsewhere = fake_python(hosts["path"].parent / "opt/py/bin/python3.11", "3.11.8")
    (hosts["path"] / "python3.11").symlink_to(elsewhere)
    # A PATH entry that resolves to the pyenv install is the same installation.
    (hosts["path"] / "python3.12").symlink_to(hosts["pyenv"] / "versions/3.12.1/bin/python3.12")

    found = discovery.discover()

    assert [(i.version, i.found_by) for i in found] == [
        ("3.11.7", "pyenv"),
        ("3.12.1", "pyenv"),
        ("3.11.9", "uv"),
        ("3.11.8", "PATH"),
    ]
    assert found[3].executable == elsewhere
    assert [i.version for i in discovery.discover("3.12")] == ["3.12.1"]


def test_path_finder_skips_failing_shims_and_system_pythons(hosts: dict[str, Path]) -> None:
    failing_command(hosts["path"] / "python3.12")
    fake_python(hosts["path"] / "python3.11", "3.11.2", prefix=Path("/usr"))
    assert discovery.discover() == []


def test_local_provider_picks_newest_across_finders_and_pyenv_on_ties(
    hosts: dict[str, Path],
) -> None:
    fake_python(hosts["pyenv"] / "versions/3.11.7/bin/python3.11", "3.11.7")
    fake_python(hosts["uv"] / "cpython-3.11.7-linux-x86_64-gnu/bin/python3.11", "3.11.7")
    fake_python(hosts["uv"] / "cpython-3.11.9-linux-x86_64-gnu/bin/python3.11", "3.11.9")
    provider = LocalProvider(ProviderContext(None, hosts["home"], lambda _m: None))

    newest = provider.find(PythonImplementation("cpython", "3.11"))
    assert (newest.version, newest.found_by) == ("3.11.9", "uv")
    tie = provider.find(PythonImplementation("cpython", "3.11.7"))
    assert (tie.found_by, tie.origin) == (
        "pyenv",
        str(hosts["pyenv"] / "versions/3.11.7/bin/python3.11"),
    )


def test_explicit_source_path_is_the_only_candidate(hosts: dict[str, Path]) -> None:
    fake_python(hosts["pyenv"] / "versions/3.11.7/bin/python3.11", "3.11.7")
    mine = fake_python(hosts["home"] / "mypy/bin/python3.11", "3.11.5")
    for given in (str(mine), str(mine.parent.parent)):
        provider = LocalProvider(ProviderContext(given, hosts["home"], lambda _m: None))
        found = provider.candidates("cpython")
        assert [(c.version, c.found_by, c.origin) for c in found] == [
            ("3.11.5", "explicit path", str(mine))
        ]


def test_explicit_path_errors_are_one_line(hosts: dict[str, Path]) -> None:
    with pytest.raises(RuntimeProviderError, match=r"^source_path /no/such/python: no such"):
        discovery.explicit("/no/such/python")
    with pytest.raises(RuntimeProviderError, match=r"no bin/python3\.X in that folder$"):
        discovery.explicit(str(hosts["home"]))
    broken = failing_command(hosts["home"] / "bin/python3.11")
    with pytest.raises(RuntimeProviderError) as error:
        discovery.explicit(str(broken))
    assert "does not run (pyenv: command not found)" in str(error.value)
    assert "\n" not in str(error.value)


def test_no_local_interpreter_lists_nothing(hosts: dict[str, Path]) -> None:
    provider = LocalProvider(ProviderContext(None, hosts["home"], lambda _m: None))
    with pytest.raises(RuntimeProviderError) as error:
        provider.find(PythonImplementation("cpython", "3.11"))
    assert str(error.value) == (
        "cpython@3.11: local interpreters: no match (available: nothing; searched"
        f" pyenv {hosts['pyenv'] / 'versions'}, uv {hosts['uv']}, python3.X on PATH)"
    )


def test_local_provider_offers_no_pypy(hosts: dict[str, Path]) -> None:
    fake_python(hosts["pyenv"] / "versions/3.11.7/bin/python3.11", "3.11.7")
    provider = LocalProvider(ProviderContext(None, hosts["home"], lambda _m: None))
    assert provider.candidates("pypy") == []


def test_pyenv_root_from_env_then_pyenv_command_then_home(
    hosts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert discovery.pyenv_root() == hosts["pyenv"]
    monkeypatch.delenv("PYENV_ROOT")
    assert discovery.pyenv_root() == hosts["home"] / ".pyenv"
    pyenv = hosts["path"] / "pyenv"
    pyenv.write_text("#!/bin/sh\necho /opt/elsewhere/pyenv\n")
    pyenv.chmod(0o755)
    assert discovery.pyenv_root() == Path("/opt/elsewhere/pyenv")


def test_uv_python_dir_asks_uv(hosts: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert discovery.uv_python_dir() == hosts["uv"]
    monkeypatch.delenv("UV_PYTHON_INSTALL_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(hosts["home"] / "data"))
    assert discovery.uv_python_dir() == hosts["home"] / "data/uv/python"


def test_pyenv_shims_on_path_are_not_run(
    hosts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_python(hosts["pyenv"] / "versions/3.11.7/bin/python3.11", "3.11.7")
    marker = hosts["home"] / "shim-ran"
    shim = hosts["pyenv"] / "shims/python3.11"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\ntouch {marker}\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{hosts['path']}")
    assert [(i.version, i.found_by) for i in discovery.discover("3.11")] == [("3.11.7", "pyenv")]
    assert not marker.exists()
