"""What a failed lock says: the layer, the package and the reason; uv's text only with -v.

Also what a build says when the lock has no wheel for a package on a locked platform.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.lock.test_lock_local import make_wheel
from venvlayers.errors import BuildError, LockError
from venvlayers.lock import LayerLock, LockedPackage, lock_stack, read_layer_lock
from venvlayers.lock.platforms import marker_environment
from venvlayers.lock.uv_messages import statements, summarize, without_false_hints
from venvlayers.lock.uvproject import make_project
from venvlayers.spec import load_stack

# What uv 0.13 writes (error: / cause: lines) ...
NOT_FOUND_013 = """\
Using CPython 3.11.7 interpreter at: /venv/bin/python
error: No solution found when resolving dependencies for split (markers: python_full_version == '3.12.*' and implementation_name == 'cpython' and platform_machine == 'AMD64' and sys_platform == 'win32')
  cause: Because no-such-package-xyz-123 was not found in the package registry and your project depends on no-such-package-xyz-123, we can conclude that your project's requirements are unsatisfiable.

hint: While the active Python version is 3.11, the resolution failed for other Python versions supported by your project. Consider limiting your project's supported Python versions using `requires-python`.
"""
CHAIN_013 = """\
error: No solution found when resolving dependencies for split (markers: python_full_version == '3.12.*' and sys_platform == 'linux')
  cause: Because pandas>=2.2.3 depends on numpy{python_full_version >= '3.12'}>=1.26.0 and your project depends on numpy<1.20, we can conclude that pandas>=2.2.3 and your project are incompatible.
         And because your project depends on pandas==2.2.3, we can conclude that your project's requirements are unsatisfiable.
"""
NETWORK_013 = """\
error: Request failed after 3 retries in 7.9s
  cause: Failed to fetch: https://no-such-host.invalid/simple/foo/
  cause: error sending request for url (https://no-such-host.invalid/simple/foo/)
  cause: client error (Connect)
  cause: dns error
  cause: failed to lookup address information: Name or service not known
"""
# ... and what uv 0.9 writes: a frame, lines wrapped at 80 columns.
ONLY_09 = """\
Using CPython 3.11.7 interpreter at: /venv/bin/python
  \u00d7 No solution found when resolving dependencies for split (markers:
  \u2502 python_full_version == '3.12.*' and implementation_name == 'cpython' and
  \u2502 platform_machine == 'x86_64' and sys_platform == 'linux'):
  \u2570\u2500\u25b6 Because only requests<=2.32.3 is available and your project depends
      on requests>2.40, we can conclude that your project's requirements are
      unsatisfiable.

      hint: While the active Python version is 3.11, the resolution failed for
      other Python versions supported by your project. Consider limiting your
      project's supported Python versions using `requires-python`.
"""
NO_VERSION_09 = """\
  \u00d7 No solution found when resolving dependencies:
  \u2570\u2500\u25b6 Because there is no version of requests==99 and your project depends
      on requests==99, we can conclude that your project's requirements are
      unsatisfiable.
"""
NETWORK_09 = """\
error: Failed to fetch: `http://127.0.0.1:9/simple/pandas/`
  Caused by: Request failed after 3 retries
  Caused by: error sending request for url (http://127.0.0.1:9/simple/pandas/)
  Caused by: tcp connect error
  Caused by: Connection refused (os error 111)
"""


def summary(text: str) -> str:
    return summarize(statements(text))


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            NOT_FOUND_013,
            "no-such-package-xyz-123 is not on the package index; check the name, or the"
            " index that [tool.uv] sets for it",
        ),
        (ONLY_09, "requests>2.40: no version matches (only requests<=2.32.3 is available)"),
        (NO_VERSION_09, "requests==99: no such version on the package index"),
        (
            CHAIN_013,
            "conflicting requirements: pandas>=2.2.3 depends on numpy>=1.26.0 and the layer"
            " requires numpy<1.20",
        ),
        (
            NETWORK_013,
            "cannot reach the package index for foo (https://no-such-host.invalid/simple/foo/):"
            " failed to lookup address information: Name or service not known; check the"
            " network and the indexes in [tool.uv], or lock offline with --local-wheels DIR"
            " --no-index",
        ),
        (
            NETWORK_09,
            "cannot reach the package index for pandas (http://127.0.0.1:9/simple/pandas/):"
            " Connection refused (os error 111); check the network and the indexes in"
            " [tool.uv], or lock offline with --local-wheels DIR --no-index",
        ),
        # A shape this module does not know: uv's first meaningful statement.
        (
            "Using CPython 3.12.1\nerror: Something new went wrong for split (markers: a == 'b')"
            "\n  hint: try this\n",
            "Something new went wrong",
        ),
        ("", "uv gave no explanation"),
    ],
    ids=[
        "not-found",
        "only-09",
        "no-version-09",
        "chain",
        "network",
        "network-09",
        "unknown",
        "empty",
    ],
)
def test_uv_explanations_are_reduced_to_one_line(output: str, expected: str) -> None:
    assert summary(output) == expected


def test_hints_about_another_python_are_dropped_unless_uv_ran_the_layers() -> None:
    kept = without_false_hints(statements(ONLY_09), python_matches=True)
    assert [s.kind for s in kept] == ["error", "cause", "hint"]
    dropped = without_false_hints(statements(ONLY_09), python_matches=False)
    assert [s.kind for s in dropped] == ["error", "cause"]
    # Joined across uv 0.9's wrapped lines.
    assert dropped[0].text.endswith("platform_machine == 'x86_64' and sys_platform == 'linux'):")


SPEC = """
[[runtimes]]
name = "cpython@3.11"
python_implementation = "cpython@3.11"
requirements = []
platforms = ["linux_x86_64"]

[[frameworks]]
name = "fw"
runtime = "cpython@3.11"
requirements = [{requirements}]
"""


def stack_with(tmp_path: Path, requirements: str, extra: str = "") -> Path:
    make_wheel(tmp_path / "wheels", "alpha", "1.0")
    make_wheel(tmp_path / "wheels", "alpha", "2.0")
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "venvstacks.toml").write_text(
        SPEC.format(requirements=requirements) + extra, encoding="utf-8"
    )
    return folder


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ('"nothere"', "nothere is in none of the package locations (--local-wheels, find-links)"),
        ('"alpha==9"', "alpha==9: no such version on the package index"),
        (
            '"alpha<2", "alpha>2"',
            "conflicting requirements: the layer requires alpha<2 and alpha>2",
        ),
    ],
    ids=["not-found", "no-version", "conflict"],
)
def test_uv_failures_name_the_layer_the_package_and_the_reason(
    tmp_path: Path, requirements: str, expected: str
) -> None:
    stack = load_stack(stack_with(tmp_path, requirements))
    with pytest.raises(LockError) as caught:
        lock_stack(stack, local_wheels=tmp_path / "wheels", no_index=True)
    assert str(caught.value) == f"framework 'fw': cannot be locked: {expected}"


def test_an_unreachable_index_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    # Port 9 (discard) refuses at once on any host: no network needed.
    extra = '\n[tool.uv]\nindex-url = "http://127.0.0.1:9/simple"\n'
    stack = load_stack(stack_with(tmp_path, '"alpha"', extra))
    with pytest.raises(LockError) as caught:
        lock_stack(stack)
    message = str(caught.value)
    assert message.startswith(
        "framework 'fw': cannot be locked: cannot reach the package index for alpha"
        " (http://127.0.0.1:9/simple/alpha/): "
    )
    assert "\n" not in message


def test_uv_runs_with_a_local_python_of_the_layers_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyenv = tmp_path / "pyenv"
    python = pyenv / "versions" / "3.9.4" / "bin" / "python3.9"
    python.parent.mkdir(parents=True)
    python.write_text("")
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    folder = stack_with(tmp_path, "")
    spec = folder / "venvstacks.toml"
    impl = 'python_implementation = "cpython@{}"'
    spec.write_text(spec.read_text().replace(impl.format("3.11"), impl.format("3.9")))
    stack = load_stack(folder)
    project = make_project(stack, stack.layer("framework-fw"), [], [])
    assert (project.python, project.python_matches) == (str(python), True)
    assert project.pyproject["project"]["requires-python"] == ">=3.9"
    spec.write_text(spec.read_text().replace(impl.format("3.9"), impl.format("3.8")))
    stack = load_stack(folder)
    project = make_project(stack, stack.layer("framework-fw"), [], [])
    assert (project.python, project.python_matches) == (sys.executable, False)


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvlayers", *map(str, args)], capture_output=True, text=True
    )


def test_cli_prints_one_line_and_uvs_text_only_with_verbose(tmp_path: Path) -> None:
    folder = stack_with(tmp_path, '"nothere"')
    options = ["--local-wheels", tmp_path / "wheels", "--no-index"]
    plain = cli("lock", folder, *options)
    assert plain.returncode == 1
    errors = [line for line in plain.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        "error: framework 'fw': cannot be locked: nothere is in none of the package locations"
        " (--local-wheels, find-links)"
    ]
    assert "split (markers" not in plain.stderr and "Traceback" not in plain.stderr
    verbose = cli("-v", "lock", folder, *options)
    assert verbose.returncode == 1
    assert "No solution found" in verbose.stderr


@pytest.mark.slow
@pytest.mark.network
def test_a_package_missing_from_pypi_is_named_without_pythons_uv_did_not_target(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "venvstacks.toml").write_text(
        textwrap.dedent(
            """
            [[runtimes]]
            name = "cpython@3.12"
            python_implementation = "cpython@3.12"
            requirements = []
            platforms = ["linux_x86_64", "win_amd64"]

            [[frameworks]]
            name = "fw"
            runtime = "cpython@3.12"
            requirements = ["no-such-package-xyz-123"]

            [tool.uv]
            exclude-newer = "2025-06-01"
            """
        ),
        encoding="utf-8",
    )
    result = cli("lock", folder)
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert line.startswith("error: framework 'fw': cannot be locked: no-such-package-xyz-123 ")
    assert "3.11" not in result.stderr and "split" not in result.stderr


# --- build: a lock without a wheel for a locked platform -------------------------------


def docopt_lock(platforms: tuple[str, ...]) -> LayerLock:
    docopt = LockedPackage("docopt", "0.6.2", None, wheels=(), provided_by=None)
    return LayerLock(
        build_name="cpython@3.12",
        packages=(docopt,),
        lock_version=1,
        locked_at="2025-06-01T00:00:00+00:00",
        requirements_hash="sha256:0",
        lock_path=Path("pylock.toml"),
        meta_path=Path("meta.json"),
        platforms=platforms,
        python_version="3.12",
    )


def test_build_names_the_package_without_a_wheel_on_a_locked_platform() -> None:
    from venvlayers.build.packages import requirement_lines

    env = marker_environment("linux_x86_64", "cpython", "3.12")
    with pytest.raises(BuildError) as caught:
        requirement_lines(docopt_lock(("linux_x86_64",)), env)
    assert str(caught.value) == (
        "cpython@3.12: no wheel of docopt 0.6.2 for linux_x86_64 / CPython 3.12 in the lock"
        " (it was accepted with --accept-missing-wheels; sdists are never built); pin a version of"
        " docopt that has a wheel for linux_x86_64, or drop the requirement that brings it"
        " in, then relock"
    )


def test_build_on_a_platform_the_lock_lacks_says_to_add_it() -> None:
    from venvlayers.build.packages import requirement_lines

    env = marker_environment("linux_x86_64", "cpython", "3.12")
    with pytest.raises(BuildError) as caught:
        requirement_lines(docopt_lock(("win_amd64",)), env)
    assert str(caught.value) == (
        "cpython@3.12: no wheel of docopt==0.6.2 fits this platform (linux_x86_64, Python"
        " 3.12); relock with this platform in 'platforms'"
    )


@pytest.mark.slow
@pytest.mark.network
def test_allow_missing_sdist_only_package_then_build_message(tmp_path: Path) -> None:
    from venvlayers.build.packages import requirement_lines

    folder = tmp_path / "stack"
    folder.mkdir()
    feature = f"{sys.version_info.major}.{sys.version_info.minor}"
    (folder / "venvstacks.toml").write_text(
        f'[[runtimes]]\nname = "rt"\npython_implementation = "cpython@{feature}"\n'
        'requirements = ["docopt==0.6.2"]\nplatforms = ["linux_x86_64"]\n'
        '\n[tool.uv]\nexclude-newer = "2025-06-01"\n',
        encoding="utf-8",
    )
    stack = load_stack(folder)
    lock_stack(stack, allow_missing=True)
    lock = read_layer_lock(stack, stack.layer("rt"))
    env = marker_environment("linux_x86_64", "cpython", feature)
    with pytest.raises(BuildError, match=r"^rt: no wheel of docopt 0\.6\.2 for linux_x86_64 /"):
        requirement_lines(lock, env)
