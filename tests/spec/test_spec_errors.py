"""Every malformed stack specification gives one line naming the layer and the field."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from venvlayers.errors import SpecError
from venvlayers.spec import load_stack

if TYPE_CHECKING:
    from tests.conftest import WriteSpec

INDEXES = """
[[tool.uv.index]]
name = "cu121"
url = "https://download.pytorch.org/whl/cu121"
explicit = true

[[tool.uv.index]]
name = "cu128"
url = "https://download.pytorch.org/whl/cu128"
explicit = true
"""


def runtime(name: str = "rt", extra: str = "", impl: str = "cpython@3.11") -> str:
    return (
        f'\n[[runtimes]]\nname = "{name}"\npython_implementation = "{impl}"\n'
        f"requirements = []\n{extra}\n"
    )


def framework(name: str, lower: str = 'runtime = "rt"', extra: str = "") -> str:
    return f'\n[[frameworks]]\nname = "{name}"\n{lower}\nrequirements = []\n{extra}\n'


def app(name: str = "app", lower: str = 'runtime = "rt"', extra: str = "") -> str:
    return (
        f'\n[[applications]]\nname = "{name}"\n{lower}\nrequirements = []\n'
        f'launch_module = "main.py"\n{extra}\n'
    )


def frameworks(*names: str) -> str:
    return "frameworks = [" + ", ".join(f'"{n}"' for n in names) + "]"


@dataclass(frozen=True)
class Case:
    """``toml`` None: no file is written. ``field`` None: the message names no field."""

    id: str
    toml: str | bytes | None
    label: str
    field: str | None
    phrase: str
    files: tuple[tuple[str, str], ...] = ()


CASES = [
    # -- missing and unknown fields --------------------------------------------------------
    Case(
        "missing-name",
        '[[runtimes]]\npython_implementation = "cpython@3.11"\nrequirements = []\n',
        "runtime #1", "name", "missing required field",
    ),
    Case(
        "missing-requirements",
        runtime() + '[[frameworks]]\nname = "fw"\nruntime = "rt"\n',
        "framework 'fw'", "requirements", "missing required field",
    ),
    Case(
        "missing-python-implementation",
        '[[runtimes]]\nname = "rt"\nrequirements = []\n',
        "runtime 'rt'", "python_implementation", "missing required field",
    ),
    Case(
        "missing-launch-module",
        runtime() + '[[applications]]\nname = "a"\nruntime = "rt"\nrequirements = []\n',
        "application 'a'", "launch_module", "missing required field",
    ),
    Case(
        "unknown-field-misspelt",
        runtime() + '[[frameworks]]\nname = "fw"\nruntime = "rt"\nrequirement = []\n',
        "framework 'fw'", "requirement", "unknown field (did you mean 'requirements'?)",
    ),
    Case(
        "unknown-field",
        runtime(extra='colour = "blue"'),
        "runtime 'rt'", "colour", "unknown field",
    ),
    Case(
        "field-of-another-kind",
        runtime() + framework("fw", extra='launch_module = "main.py"'),
        "framework 'fw'", "launch_module", "only application layers have it",
    ),
    Case(
        "runtime-field-on-runtime",
        runtime(extra='runtime = "rt"'),
        "runtime 'rt'", "runtime", "only framework and application layers have it",
    ),
    Case(
        "unknown-top-level-table",
        runtime() + '[[framework]]\nname = "fw"\nruntime = "rt"\nrequirements = []\n',
        "venvstacks.toml", "framework", "unknown field (did you mean 'frameworks'?)",
    ),
    # -- wrong types -----------------------------------------------------------------------
    Case(
        "requirements-not-a-list",
        runtime().replace("requirements = []", 'requirements = "numpy"'),
        "runtime 'rt'", "requirements", "must be a list of strings, not a string",
    ),
    Case(
        "requirements-list-of-int",
        runtime().replace("requirements = []", "requirements = [1]"),
        "runtime 'rt'", "requirements", "not a list containing an integer",
    ),
    Case(
        "name-not-a-string",
        '[[runtimes]]\nname = 3\npython_implementation = "cpython@3.11"\nrequirements = []\n',
        "runtime #1", "name", "must be a string, not an integer",
    ),
    Case(
        "versioned-not-a-bool",
        runtime(extra='versioned = "yes"'),
        "runtime 'rt'", "versioned", "must be true or false, not a string",
    ),
    Case(
        "package-indexes-not-a-table",
        INDEXES + runtime(extra='package_indexes = ["cu121"]'),
        "runtime 'rt'", "package_indexes", "must be a table of strings, not a list",
    ),
    Case(
        "frameworks-not-a-list",
        runtime() + framework("a") + framework("b", lower='frameworks = "a"'),
        "framework 'b'", "frameworks", "must be a list of strings, not a string",
    ),
    Case(
        "runtimes-not-an-array-of-tables",
        '[runtimes]\nname = "rt"\n',
        "venvstacks.toml", "runtimes", "must be an array of tables ([[runtimes]])",
    ),
    Case(
        "tool-not-a-table",
        "tool = 1\n" + runtime(),
        "venvstacks.toml", "tool", "must be a table",
    ),
    Case(
        "tool-uv-not-a-table",
        "[tool]\nuv = 1\n" + runtime(),
        "venvstacks.toml", "tool.uv", "must be a table",
    ),
    # -- names -----------------------------------------------------------------------------
    Case(
        "duplicate-runtime",
        runtime() + runtime(impl="cpython@3.12"),
        "runtime 'rt'", "name", "duplicate runtime name 'rt'",
    ),
    Case(
        "duplicate-framework",
        runtime() + framework("fw") + framework("fw"),
        "framework 'fw'", "name", "duplicate framework name 'fw'",
    ),
    Case(
        "duplicate-application",
        runtime() + app("a") + app("a"),
        "application 'a'", "name", "duplicate application name 'a'",
        (("main.py", ""),),
    ),
    Case(
        "reserved-prefix-app",
        runtime("app-py"),
        "runtime 'app-py'", "name", "reserved 'app-'",
    ),
    Case(
        "reserved-prefix-framework",
        runtime("framework-py"),
        "runtime 'framework-py'", "name", "reserved 'framework-'",
    ),
    Case(
        "invalid-layer-name",
        runtime() + framework("ml/gpu"),
        "framework 'ml/gpu'", "name", "is not a valid layer name",
    ),
    # -- python_implementation -------------------------------------------------------------
    Case(
        "implementation-no-at",
        runtime(impl="cpython3.11"),
        "runtime 'rt'", "python_implementation", "'cpython3.11' is not 'cpython@X.Y'",
    ),
    Case(
        "implementation-major-only",
        runtime(impl="cpython@3"),
        "runtime 'rt'", "python_implementation", "'cpython@3' is not 'cpython@X.Y'",
    ),
    Case(
        "implementation-unknown",
        runtime(impl="jython@2.7"),
        "runtime 'rt'", "python_implementation", "'jython@2.7' is not",
    ),
    Case(
        "implementation-and-fully-versioned-name",
        runtime(extra='fully_versioned_name = "cpython@3.11.7"'),
        "runtime 'rt'", "fully_versioned_name", "give only 'python_implementation'",
    ),
    Case(
        "fully-versioned-name-invalid",
        '[[runtimes]]\nname = "rt"\nfully_versioned_name = "py311"\nrequirements = []\n',
        "runtime 'rt'", "fully_versioned_name", "'py311' is not 'cpython@X.Y'",
    ),
    Case(
        "runtime-source-invalid",
        runtime(extra='source = "conda"'),
        "runtime 'rt'", "source", "'conda' is not one of auto, standalone, local, archive",
    ),
    Case(
        "runtime-source-path-empty",
        runtime(extra='source = "archive"\nsource_path = ""'),
        "runtime 'rt'", "source_path", "must not be empty",
    ),
    # -- runtime / frameworks --------------------------------------------------------------
    Case(
        "both-runtime-and-frameworks",
        runtime() + framework("a") + framework("b", lower='runtime = "rt"\n' + frameworks("a")),
        "framework 'b'", "runtime", "give exactly one of 'runtime' and 'frameworks' (not both)",
    ),
    Case(
        "neither-runtime-nor-frameworks",
        runtime() + '[[frameworks]]\nname = "fw"\nrequirements = []\n',
        "framework 'fw'", None, "exactly one of 'runtime' and 'frameworks' (neither is set)",
    ),
    Case(
        "app-neither-runtime-nor-frameworks",
        runtime() + app("a", lower=""),
        "application 'a'", None, "exactly one of 'runtime' and 'frameworks' (neither is set)",
        (("main.py", ""),),
    ),
    Case(
        "unknown-runtime",
        runtime() + framework("fw", lower='runtime = "cpython@3.12"'),
        "framework 'fw'", "runtime", "unknown runtime 'cpython@3.12' (defined: 'rt')",
    ),
    Case(
        "unknown-framework",
        runtime() + framework("a") + app("x", lower=frameworks("a", "torch")),
        "application 'x'", "frameworks", "unknown framework 'torch' (defined: 'a')",
        (("main.py", ""),),
    ),
    Case(
        "forward-reference",
        runtime() + framework("top", lower=frameworks("base")) + framework("base"),
        "framework 'top'", "frameworks", "'base' is defined later in the file",
    ),
    Case(
        "framework-lists-itself",
        runtime() + framework("a", lower=frameworks("a")),
        "framework 'a'", "frameworks", "lists itself",
    ),
    Case(
        "frameworks-empty",
        runtime() + framework("a", lower="frameworks = []"),
        "framework 'a'", "frameworks", "must name at least one framework",
    ),
    Case(
        "framework-listed-twice",
        runtime() + framework("a") + framework("b", lower=frameworks("a", "a")),
        "framework 'b'", "frameworks", "more than once",
    ),
    Case(
        "frameworks-on-different-runtimes",
        runtime("py311")
        + runtime("py312", impl="cpython@3.12")
        + framework("a", lower='runtime = "py311"')
        + framework("b", lower='runtime = "py312"')
        + framework("c", lower=frameworks("a", "b")),
        "framework 'c'", "frameworks",
        "different runtimes ('a' uses 'py311', 'b' uses 'py312')",
    ),
    Case(
        "c3-conflict",
        runtime()
        + framework("a")
        + framework("b")
        + framework("x", lower=frameworks("a", "b"))
        + framework("y", lower=frameworks("b", "a"))
        + app("top", lower=frameworks("x", "y")),
        "application 'top'", "frameworks", "C3) for these frameworks: conflict between 'a' and 'b'",
        (("main.py", ""),),
    ),
    Case(
        "c3-conflict-base-before-derived",
        runtime() + framework("base") + framework("a", lower=frameworks("base"))
        + framework("b", lower=frameworks("base", "a")),
        "framework 'b'", "frameworks", "conflict between 'base' and 'a'",
    ),
    # -- requirements ----------------------------------------------------------------------
    Case(
        "invalid-requirement-operator",
        runtime().replace("requirements = []", 'requirements = ["numpy>="]'),
        "runtime 'rt'", "requirements", "invalid requirement 'numpy>='",
    ),
    Case(
        "invalid-requirement-text",
        runtime() + framework("fw").replace("requirements = []", 'requirements = ["not ok!"]'),
        "framework 'fw'", "requirements", "invalid requirement 'not ok!'",
    ),
    Case(
        "requirements-from-missing-file",
        runtime(extra='requirements_from = "requirements.txt"'),
        "runtime 'rt'", "requirements_from", "file not found",
    ),
    Case(
        "requirements-from-two-package-managers",
        runtime(extra='requirements_from = ["pyproject.toml", "uv.lock"]'),
        "runtime 'rt'", "requirements_from", "two package-manager files",
        (("pyproject.toml", "[project]\nname = 'x'\n"), ("uv.lock", "")),
    ),
    # -- platforms and targets -------------------------------------------------------------
    Case(
        "unknown-platform",
        runtime(extra='platforms = ["linux_x86-64"]'),
        "runtime 'rt'", "platforms", "unknown platform 'linux_x86-64' (did you mean 'linux_x86_64'?",
    ),
    Case(
        "unsupported-platform",
        runtime(extra='platforms = ["win32"]'),
        "runtime 'rt'", "platforms", "'win32' is not supported",
    ),
    Case(
        "platform-missing-beneath",
        runtime(extra='platforms = ["linux_x86_64"]')
        + framework("fw", extra='platforms = ["linux_x86_64", "win_amd64"]'),
        "framework 'fw'", "platforms",
        "win_amd64 not available in the layers beneath (they support: linux_x86_64)",
    ),
    Case(
        "platform-above-disabled-layer",
        runtime() + framework("off", extra="platforms = []")
        + framework("fw", lower=frameworks("off"), extra='platforms = ["linux_x86_64"]'),
        "framework 'fw'", "platforms", "a layer beneath has platforms = []",
    ),
    Case(
        "linux-target-manylinux",
        runtime(extra='linux_target = "manylinux2014"'),
        "runtime 'rt'", "linux_target", "'manylinux2014' is not 'glibc' or 'glibc@X.Y'",
    ),
    Case(
        "linux-target-major-only",
        runtime() + framework("fw", extra='linux_target = "glibc@2"'),
        "framework 'fw'", "linux_target", "'glibc@2' is not 'glibc' or 'glibc@X.Y'",
    ),
    Case(
        "macosx-target-three-parts",
        runtime(extra='macosx_target = "13.0.1"'),
        "runtime 'rt'", "macosx_target", "'13.0.1' is not 'X' or 'X.Y'",
    ),
    Case(
        "macosx-target-name",
        runtime() + app("a", extra='macosx_target = "sonoma"'),
        "application 'a'", "macosx_target", "'sonoma' is not 'X' or 'X.Y'",
        (("main.py", ""),),
    ),
    # -- indexes ---------------------------------------------------------------------------
    Case(
        "unknown-package-index",
        INDEXES + runtime() + framework("fw", extra='package_indexes = {torch = "cu999"}'),
        "framework 'fw'", "package_indexes", "unknown index 'cu999' (named indexes: cu121, cu128)",
    ),
    Case(
        "unknown-priority-index",
        INDEXES + runtime(extra='priority_indexes = ["pytorch"]'),
        "runtime 'rt'", "priority_indexes", "unknown index 'pytorch'",
    ),
    Case(
        "unknown-index-override",
        INDEXES + runtime() + framework("fw", extra='index_overrides = {cu121 = "cu118"}'),
        "framework 'fw'", "index_overrides", "unknown index 'cu118'",
    ),
    Case(
        "unknown-index-none-defined",
        runtime(extra='package_indexes = {torch = "cu121"}'),
        "runtime 'rt'", "package_indexes", "none: define them in [[tool.uv.index]]",
    ),
    Case(
        "inconsistent-package-indexes-app-above-framework",
        INDEXES
        + runtime()
        + framework("torch", extra='package_indexes = {torch = "cu121"}')
        + app("a", lower=frameworks("torch"), extra='package_indexes = {torch = "cu128"}'),
        "application 'a'", "package_indexes",
        "to accept this, add: index_overrides = {cu121 = \"cu128\"}",
        (("main.py", ""),),
    ),
    Case(
        "inconsistent-package-indexes-two-frameworks",
        INDEXES
        + runtime()
        + framework("gpu", extra='package_indexes = {torch = "cu128"}')
        + framework("old", extra='package_indexes = {torch = "cu121"}')
        + app("a", lower=frameworks("gpu", "old")),
        "application 'a'", "package_indexes",
        "'torch' comes from index 'cu128' in framework 'gpu' and from 'cu121' in framework 'old'",
        (("main.py", ""),),
    ),
    Case(
        "index-without-url",
        '[[tool.uv.index]]\nname = "x"\n' + runtime(),
        "[tool.uv]", "url", "missing or not a string",
    ),
    Case(
        "duplicate-index-name",
        INDEXES + '[[tool.uv.index]]\nname = "cu121"\nurl = "https://x"\n' + runtime(),
        "[tool.uv]", None, "index 'cu121': duplicate index name",
    ),
    Case(
        "index-explicit-not-bool",
        '[[tool.uv.index]]\nname = "x"\nurl = "https://x"\nexplicit = "yes"\n' + runtime(),
        "[tool.uv]", "explicit", "must be true or false",
    ),
    Case(
        "sidecar-uv-config-not-toml",
        runtime(),
        "venvstacks.uv.toml", None, "not valid TOML",
        (("venvstacks.uv.toml", "index = [\n"),),
    ),
    Case(
        "sidecar-index-without-url",
        runtime(),
        "venvstacks.uv.toml", "url", "missing or not a string",
        (("venvstacks.uv.toml", '[[index]]\nname = "x"\n'),),
    ),
    Case(
        "sidecar-index-not-array",
        runtime(),
        "venvstacks.uv.toml", "index", "must be an array of tables ([[index]])",
        (("venvstacks.uv.toml", 'index = "https://x"\n'),),
    ),
    # -- launch and support modules --------------------------------------------------------
    Case(
        "launch-module-missing",
        runtime() + app("a"),
        "application 'a'", "launch_module", "module not found",
    ),
    Case(
        "support-module-missing",
        runtime() + app("a", extra='support_modules = ["gone.py"]'),
        "application 'a'", "support_modules", "module not found",
        (("main.py", ""),),
    ),
    Case(
        "launch-module-not-python",
        runtime() + app("a").replace("main.py", "notes.txt"),
        "application 'a'", "launch_module", "neither a .py file nor a package folder",
        (("notes.txt", ""),),
    ),
    Case(
        "launch-package-without-main",
        runtime() + app("a").replace("main.py", "tool"),
        "application 'a'", "launch_module", "package tool has no __main__.py",
        (("tool/__init__.py", ""),),
    ),
    Case(
        "launch-module-not-importable",
        runtime() + app("a").replace("main.py", "my-app.py"),
        "application 'a'", "launch_module", "'my-app' is not an importable module name",
        (("my-app.py", ""),),
    ),
    Case(
        "support-module-same-name-as-launch",
        runtime() + app("a", extra='support_modules = ["lib/main.py"]'),
        "application 'a'", "support_modules", "'main' (main.py) is also used by the launch module",
        (("main.py", ""), ("lib/main.py", "")),
    ),
    Case(
        "support-modules-same-name",
        runtime() + app("a", extra='support_modules = ["helper.py", "lib/helper"]'),
        "application 'a'", "support_modules", "also used by another support module",
        (("main.py", ""), ("helper.py", ""), ("lib/helper/__init__.py", "")),
    ),
    # -- files -----------------------------------------------------------------------------
    Case(
        "not-toml",
        '[[runtimes]\nname = "rt"\n',
        "venvstacks.toml", None, "not valid TOML",
    ),
    Case(
        "not-utf8",
        b'[[runtimes]]\nname = "\xff"\n',
        "venvstacks.toml", None, "not valid TOML",
    ),
    Case(
        "spec-path-missing",
        None,
        "venvstacks.toml", None, "stack specification not found",
    ),
]  # fmt: skip


def _load_error(case: Case, tmp_path: Path) -> str:
    for relative, text in case.files:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    spec = tmp_path / "venvstacks.toml"
    if isinstance(case.toml, bytes):
        spec.write_bytes(case.toml)
    elif case.toml is not None:
        spec.write_text(case.toml)
    with pytest.raises(SpecError) as info:
        load_stack(spec)
    return str(info.value)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_spec_gives_one_line_naming_layer_and_field(case: Case, tmp_path: Path) -> None:
    message = _load_error(case, tmp_path)
    assert "\n" not in message
    assert message.split(": ")[0].endswith(case.label), message
    if case.field is not None:
        assert f"'{case.field}'" in message, message
    assert case.phrase in message


def test_missing_spec_folder_names_the_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"venvstacks\.toml: stack specification not found"):
        load_stack(tmp_path)


def test_suggested_index_overrides_line_makes_the_spec_load(write_spec: WriteSpec) -> None:
    def spec(overrides: str) -> str:
        return (
            INDEXES
            + runtime()
            + framework("torch", extra='package_indexes = {torch = "cu121"}')
            + app("a", lower=frameworks("torch"), extra='package_indexes = {torch = "cu128"}')
            + overrides
        )

    path = write_spec(spec(""), files={"main.py": ""})
    with pytest.raises(SpecError) as info:
        load_stack(path)
    line = str(info.value).split("to accept this, add: ")[1]
    assert line == 'index_overrides = {cu121 = "cu128"}'

    stack = load_stack(write_spec(spec(line)))
    (application,) = stack.applications
    assert application.index_overrides == (("cu121", "cu128"),)
    assert dict(application.effective_package_indexes) == {"torch": "cu128"}


# -- the same errors through the real command line ---------------------------------------
CLI_CASES = {
    "duplicate-framework",
    "c3-conflict",
    "invalid-requirement-operator",
    "launch-module-missing",
    "not-toml",
    "spec-path-missing",
}


@pytest.mark.parametrize("case", [c for c in CASES if c.id in CLI_CASES], ids=lambda c: c.id)
def test_cli_reports_spec_error_in_one_line_and_exits_1(case: Case, tmp_path: Path) -> None:
    expected = _load_error(case, tmp_path)
    completed = subprocess.run(
        [sys.executable, "-m", "venvlayers", "show", str(tmp_path / "venvstacks.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert expected in lines[0]
    assert completed.stdout == ""
