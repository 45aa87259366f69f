"""A runtime version no source can provide is refused by ``lock``, offline, before uv runs."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from tests.conftest import WriteSpec
from venvlayers.errors import RuntimeProviderError
from venvlayers.lock import lock_stack
from venvlayers.lock import stack as lock_stack_module
from venvlayers.runtime import (
    MIRROR_ENV,
    SOURCE_ENV,
    check_runtime_available,
    discovery,
    prepare,
    prepare_runtime,
    runtime_problem,
    standalone,
)
from venvlayers.runtime._base import RuntimeCandidate, RuntimeProvider
from venvlayers.runtime.availability import nearest
from venvlayers.runtime.pbs_archives import ArchiveName, host_triples, parse_archive_name
from venvlayers.spec import RuntimeSpec, load_stack
from venvlayers.spec.model import PythonImplementation

PBS = ("3.11.9", "3.12.10", "3.12.11", "3.12.12", "3.13.1")


def spec_text(impl: str, source: str = "auto", extra: str = "") -> str:
    return f"""
    [[runtimes]]
    name = "cpython@3.12"
    python_implementation = "{impl}"
    requirements = []
    source = "{source}"
    {extra}
    """


@pytest.fixture(autouse=True)
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host whose sources are known: a fake pbs index and pyenv with 3.12.1 only."""
    for name in (MIRROR_ENV, SOURCE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VENVLAYERS_CACHE_DIR", str(tmp_path / "cache"))
    pyenv = tmp_path / "pyenv"
    python = pyenv / "versions" / "3.12.1" / "bin" / "python3.12"
    python.parent.mkdir(parents=True)
    python.write_text("")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(empty))
    monkeypatch.setenv("PATH", str(empty))
    index = tuple(
        (archive(v), f"https://releases.invalid/{archive(v).filename}", None) for v in PBS
    )
    monkeypatch.setattr(standalone, "release_index", lambda: index)
    return tmp_path


def archive(version: str) -> ArchiveName:
    name = parse_archive_name(
        f"cpython-{version}+20250101-{host_triples()[0]}-install_only_stripped.tar.gz"
    )
    assert name is not None
    return name


def runtime(write_spec: WriteSpec, impl: str, source: str = "auto", extra: str = "") -> RuntimeSpec:
    layer = load_stack(write_spec(spec_text(impl, source, extra))).layer("cpython@3.12")
    assert isinstance(layer, RuntimeSpec)
    return layer


def test_a_release_no_source_provides_names_the_nearest_ones(write_spec: WriteSpec) -> None:
    assert runtime_problem(runtime(write_spec, "cpython@3.12.99")) == (
        "runtime 'cpython@3.12': python_implementation 'cpython@3.12.99' is not a CPython"
        " release any runtime source provides (nearest: python-build-standalone 3.12.12,"
        " 3.12.11; pyenv 3.12.1); use one of these or 'cpython@3.12' (the newest)"
    )


def test_a_feature_version_no_source_provides(write_spec: WriteSpec) -> None:
    problem = runtime_problem(runtime(write_spec, "cpython@3.99"))
    assert problem is not None
    assert "(nearest: python-build-standalone 3.13.1, 3.12.12; pyenv 3.12.1);" in problem
    assert problem.endswith("; use one of these versions")


def test_what_standalone_offers_is_enough_without_looking_for_interpreters(
    write_spec: WriteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object) -> object:
        raise AssertionError("discovery ran")

    monkeypatch.setattr(discovery, "discover", refuse)
    assert runtime_problem(runtime(write_spec, "cpython@3.12")) is None
    assert runtime_problem(runtime(write_spec, "cpython@3.12.11")) is None


def test_a_local_interpreter_is_enough_under_auto(write_spec: WriteSpec) -> None:
    assert runtime_problem(runtime(write_spec, "cpython@3.12.1")) is None


def test_the_layer_source_decides_what_is_consulted(write_spec: WriteSpec) -> None:
    local = runtime_problem(runtime(write_spec, "cpython@3.12.12", "local"))
    assert local == (
        "runtime 'cpython@3.12': python_implementation 'cpython@3.12.12' matches no local CPython"
        " interpreter (runtime source 'local', nearest: pyenv 3.12.1); use one of these or"
        " 'cpython@3.12' (the newest), install that version, or choose another runtime source"
    )
    pbs = runtime_problem(runtime(write_spec, "cpython@3.12.1", "standalone"))
    assert pbs is not None
    assert "is not a CPython release python-build-standalone provides" in pbs
    assert "(runtime source 'standalone', nearest: python-build-standalone 3.12.10," in pbs
    assert runtime_problem(runtime(write_spec, "cpython@3.12.1", "local")) is None
    assert runtime_problem(runtime(write_spec, "cpython@3.12.12", "standalone")) is None


def test_the_source_from_the_environment_wins(
    write_spec: WriteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SOURCE_ENV, "local")
    with pytest.raises(RuntimeProviderError, match="matches no local CPython interpreter"):
        check_runtime_available(runtime(write_spec, "cpython@3.12.12"))


def test_an_archive_source_is_judged_by_its_file_name(write_spec: WriteSpec, host: Path) -> None:
    path = host / archive("3.12.11").filename
    path.write_bytes(b"not read: the name says the version")
    extra = f'source_path = "{path}"'
    assert runtime_problem(runtime(write_spec, "cpython@3.12", "archive", extra)) is None
    problem = runtime_problem(runtime(write_spec, "cpython@3.12.12", "archive", extra))
    assert problem is not None
    assert (
        "is not the version of the runtime archive (runtime source 'archive', nearest:" in problem
    )


def test_a_prepared_runtime_in_the_cache_is_enough_under_auto(
    write_spec: WriteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_local(monkeypatch, "3.12.7")
    prepare_runtime(PythonImplementation("cpython", "3.12.7"), source="local")
    monkeypatch.setattr(discovery, "discover", lambda *_a: [])
    assert runtime_problem(runtime(write_spec, "cpython@3.12.7")) is None


def test_nearest_prefers_the_same_feature_version() -> None:
    versions = ["3.11.9", "3.12.1", "3.12.9", "3.12.10", "3.13.0", "3.13.2"]
    assert nearest(PythonImplementation("cpython", "3.12.8"), versions) == ["3.12.9", "3.12.10"]
    assert nearest(PythonImplementation("cpython", "3.12.99"), versions) == ["3.12.10", "3.12.9"]
    assert nearest(PythonImplementation("cpython", "3.14"), versions) == ["3.13.2", "3.12.10"]
    assert nearest(PythonImplementation("cpython", "3.10.4"), versions) == ["3.11.9", "3.12.10"]


def test_lock_refuses_before_resolving_anything(
    write_spec: WriteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the resolver ran")

    monkeypatch.setattr(lock_stack_module, "resolve_layer", refuse)
    text = (
        spec_text("cpython@3.12.99")
        + """
    [[frameworks]]
    name = "fw"
    runtime = "cpython@3.12"
    requirements = ["anything"]
    """
    )
    stack = load_stack(write_spec(text))
    with pytest.raises(RuntimeProviderError, match=r"^runtime 'cpython@3\.12': .*3\.12\.99"):
        lock_stack(stack)
    assert not (stack.spec_dir / "requirements").exists()


class FakeLocal(RuntimeProvider):
    """Stands in for local relocation: one interpreter found by pyenv, a tiny tree."""

    source = "local"
    version = "3.12.1"

    @property
    def description(self) -> str:
        return "local interpreters"

    def candidates(
        self, implementation: str, feature_version: str | None = None
    ) -> list[RuntimeCandidate]:
        return [RuntimeCandidate("cpython", self.version, "/fake/python", "pyenv", "fake")]

    def materialize(self, candidate: RuntimeCandidate, dest: Path) -> None:
        python = dest / "bin" / "python3.12"
        python.parent.mkdir(parents=True)
        python.write_text("")


def install_fake_local(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    fake = type("Fake", (FakeLocal,), {"version": version})
    monkeypatch.setattr(prepare, "LocalProvider", fake)
    monkeypatch.setitem(prepare.PROVIDERS, "local", fake)


def test_auto_falls_back_to_local_with_one_calm_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline(url: str, dest: Path, *, timeout: float = 0) -> None:
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(standalone, "fetch_url", offline)
    install_fake_local(monkeypatch, "3.12.1")
    messages: list[str] = []
    prepared = prepare_runtime(PythonImplementation("cpython", "3.12"), report=messages.append)
    assert (prepared.source, prepared.version) == ("local", "3.12.1")
    warnings = [m for m in messages if m.startswith("warning:")]
    assert warnings == [
        "warning: runtime cpython@3.12: standalone builds unreachable (releases.invalid);"
        " using local CPython 3.12.1 from pyenv"
    ]
    assert not any("Name or service not known" in m or "Errno" in m for m in messages)


def test_auto_without_any_source_still_names_the_network_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline(url: str, dest: Path, *, timeout: float = 0) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(standalone, "fetch_url", offline)
    monkeypatch.setattr(discovery, "discover", lambda *_a: [])
    with pytest.raises(RuntimeProviderError) as caught:
        prepare_runtime(PythonImplementation("cpython", "3.12"))
    message = str(caught.value)
    assert "standalone: releases.invalid unreachable (Name or service not known)" in message
    assert "\n" not in message


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args)], capture_output=True, text=True
    )


def test_cli_lock_is_one_line_and_show_only_marks_it(tmp_path: Path) -> None:
    # The real pbs-installer index and this host's interpreters: 3.12.99 is in neither.
    spec = tmp_path / "venvstacks.toml"
    spec.write_text(spec_text("cpython@3.12.99").replace("\n    ", "\n"), encoding="utf-8")
    locked = cli("lock", spec)
    assert locked.returncode == 1
    (line,) = locked.stderr.strip().splitlines()
    assert line.startswith(
        "error: runtime 'cpython@3.12': python_implementation 'cpython@3.12.99' is not a CPython"
        " release any runtime source provides (nearest: python-build-standalone 3.12."
    )
    assert "Traceback" not in locked.stderr
    shown = cli("show", spec)
    assert shown.returncode == 0
    assert "  *cpython@3.12  (runtime unavailable, see below)" in shown.stdout.splitlines()
    assert shown.stdout.splitlines()[-1] == "unavailable: " + line.removeprefix("error: ")
