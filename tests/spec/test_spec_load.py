"""Valid stack specifications: defaults, inference through lower layers, uv config, select()."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from venvlayers.errors import SpecError
from venvlayers.spec import (
    ALL_PLATFORMS,
    ApplicationSpec,
    FrameworkSpec,
    LayerKind,
    PackageIndex,
    PythonImplementation,
    RuntimeSpec,
    StackSpec,
    load_stack,
)

if TYPE_CHECKING:
    from tests.conftest import WriteSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sklearn-demo"

RUNTIME = """
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.11"
requirements = []
"""

INDEXES = """
[[tool.uv.index]]
name = "cu121"
url = "https://download.pytorch.org/whl/cu121"

[[tool.uv.index]]
name = "cu128"
url = "https://download.pytorch.org/whl/cu128"
explicit = true
"""


@pytest.fixture(autouse=True)
def _no_macos_target_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MACOSX_DEPLOYMENT_TARGET", raising=False)


def layer_text(kind: str, name: str, *lines: str) -> str:
    return f'\n[[{kind}]]\nname = "{name}"\nrequirements = []\n' + "\n".join(lines) + "\n"


# -- defaults --------------------------------------------------------------------------------
def test_minimal_layers_get_documented_defaults(write_spec: WriteSpec) -> None:
    stack = load_stack(
        write_spec(
            RUNTIME
            + layer_text("frameworks", "fw", 'runtime = "rt"')
            + layer_text("applications", "app", 'runtime = "rt"', 'launch_module = "main.py"'),
            files={"main.py": "print('hi')\n"},
        )
    )
    (runtime,) = stack.runtimes
    (framework,) = stack.frameworks
    (application,) = stack.applications
    assert isinstance(runtime, RuntimeSpec)
    assert runtime.kind is LayerKind.RUNTIME
    assert runtime.requirements == ()
    assert runtime.requirements_from == ()
    assert runtime.platforms == ALL_PLATFORMS
    assert runtime.enabled
    assert runtime.versioned is False
    assert (runtime.linux_target, runtime.macosx_target) == ("2.28", "13.0")
    assert runtime.dynlib_exclude == ()
    assert runtime.package_indexes == runtime.index_overrides == ()
    assert runtime.priority_indexes == ()
    assert runtime.effective_package_indexes == ()
    assert (runtime.source, runtime.source_path) == ("auto", None)
    assert runtime.python_implementation == PythonImplementation("cpython", "3.11")
    assert runtime.lower_layers == ()

    assert isinstance(framework, FrameworkSpec)
    assert (framework.runtime_name, framework.frameworks, framework.framework_order) == (
        "rt",
        (),
        (),
    )
    assert framework.lower_layers == ("rt",)
    assert framework.platforms == ALL_PLATFORMS

    assert isinstance(application, ApplicationSpec)
    assert application.launch_module == stack.spec_dir / "main.py"
    assert application.launch_module.is_absolute()
    assert application.launch_module_name == "main"
    assert application.support_modules == ()
    assert stack.warnings == ()
    assert stack.indexes == ()
    assert (dict(stack.uv_config), stack.uv_config_path) == ({}, None)
    assert stack.requirements_dir == stack.spec_dir / "requirements"


@pytest.mark.parametrize(
    ("text", "implementation", "version", "feature", "exact"),
    [
        ("cpython@3.11", "cpython", "3.11", "3.11", False),
        ("cpython@3.12.7", "cpython", "3.12.7", "3.12", True),
        ("pypy@3.10", "pypy", "3.10", "3.10", False),
    ],
)
def test_python_implementation_is_parsed(
    write_spec: WriteSpec, text: str, implementation: str, version: str, feature: str, exact: bool
) -> None:
    stack = load_stack(write_spec(RUNTIME.replace("cpython@3.11", text)))
    parsed = stack.runtimes[0].python_implementation
    assert (parsed.implementation, parsed.version) == (implementation, version)
    assert (parsed.feature_version, parsed.is_exact, str(parsed)) == (feature, exact, text)


@pytest.mark.parametrize(
    ("source", "given", "expected"),
    [
        ("archive", "dl/py.tar.gz", "{spec_dir}/dl/py.tar.gz"),
        ("local", "/opt/python/3.11", "/opt/python/3.11"),
        ("standalone", "https://mirror.example/pbs/", "https://mirror.example/pbs/"),
        ("standalone", "file:///srv/pbs", "file:///srv/pbs"),
    ],
)
def test_runtime_source_path_resolves_against_the_spec_unless_a_url(
    write_spec: WriteSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    given: str,
    expected: str,
) -> None:
    spec = write_spec(RUNTIME + f'source = "{source}"\nsource_path = "{given}"\n')
    monkeypatch.chdir("/")  # relative to the spec's folder, not the working directory
    runtime = load_stack(spec).runtimes[0]
    assert runtime.source == source
    assert runtime.source_path == expected.format(spec_dir=tmp_path.resolve())


def test_spec_folder_and_relative_paths_resolve_against_the_spec(
    write_spec: WriteSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(
        RUNTIME.replace("requirements = []", 'requirements = []\nrequirements_from = "req.txt"')
        + layer_text(
            "applications",
            "app",
            'runtime = "rt"',
            'launch_module = "src/tool"',
            'support_modules = ["src/util.py"]',
        ),
        files={"req.txt": "numpy\n", "src/tool/__main__.py": "", "src/util.py": ""},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    stack = load_stack("..")  # the spec's folder, relative to the working directory
    assert stack.path == spec.resolve()
    root = tmp_path.resolve()
    assert stack.runtimes[0].requirements_from == (root / "req.txt",)
    (application,) = stack.applications
    assert application.launch_module == root / "src" / "tool"
    assert application.launch_module_name == "tool"
    assert application.support_modules == (root / "src" / "util.py",)


def test_module_names_come_from_the_spec_not_symlink_targets(write_spec: WriteSpec) -> None:
    spec = write_spec(
        RUNTIME
        + layer_text(
            "applications",
            "app",
            'runtime = "rt"',
            'launch_module = "entry.py"',
            'support_modules = ["lib/../helpers"]',
        ),
        files={"src/real_main.py": "", "helpers/__init__.py": ""},
    )
    (spec.parent / "entry.py").symlink_to(spec.parent / "src" / "real_main.py")
    (application,) = load_stack(spec).applications
    assert application.launch_module == spec.resolve().parent / "entry.py"
    assert application.launch_module_name == "entry"
    assert application.support_modules == (spec.resolve().parent / "helpers",)


# -- the example stack -----------------------------------------------------------------------
def test_example_stack_loads_with_expected_layers() -> None:
    stack = load_stack(EXAMPLE / "venvstacks.toml")
    assert stack == load_stack(EXAMPLE)  # the folder works as well as the file
    assert [layer.build_name for layer in stack.layers()] == [
        "cpython@3.11",
        "framework-sklearn",
        "app-classify",
        "app-cluster-report",
    ]
    expected_platforms = ("win_amd64", "linux_x86_64", "linux_aarch64", "macosx_arm64")
    for layer in stack.layers():
        assert layer.platforms == expected_platforms, layer.label
        assert (layer.linux_target, layer.macosx_target) == ("2.28", "13.0")
        assert layer.install_target(None) == layer.build_name
    runtime = stack.runtime_of(stack.applications[0])
    assert runtime.python_implementation == PythonImplementation("cpython", "3.11")
    assert stack.frameworks[0].lower_layers == ("cpython@3.11",)
    classify, report = stack.applications
    assert classify.lower_layers == report.lower_layers == ("framework-sklearn", "cpython@3.11")
    assert classify.launch_module == EXAMPLE / "launch_modules" / "classify.py"
    assert report.launch_module_name == "cluster_report"
    assert report.support_modules == (EXAMPLE / "launch_modules" / "report_format.py",)
    assert report.requirements == ("scikit-learn", "tabulate")
    assert stack.warnings == ()


# -- names -----------------------------------------------------------------------------------
def test_build_and_deploy_names(write_spec: WriteSpec) -> None:
    stack = load_stack(
        write_spec(
            RUNTIME
            + layer_text("frameworks", "x", 'runtime = "rt"')
            + layer_text("frameworks", "v", 'runtime = "rt"', "versioned = true")
            + layer_text(
                "applications",
                "x",
                'frameworks = ["x"]',
                'launch_module = "m.py"',
                "versioned = true",
            ),
            files={"m.py": ""},
        )
    )
    framework_x, framework_v = stack.frameworks
    (app_x,) = stack.applications
    assert [stack.runtimes[0].build_name, framework_x.build_name, app_x.build_name] == [
        "rt",
        "framework-x",
        "app-x",
    ]
    assert framework_x.install_target(7) == "framework-x"  # unversioned: never a suffix
    assert framework_v.install_target(3) == "framework-v@3"
    assert framework_v.install_target(None) == "framework-v@1"
    assert app_x.install_target(12) == "app-x@12"
    assert framework_x.label == "framework 'x'"
    # A framework and an application may share a name: their build names differ.
    assert stack.find("framework-x") is framework_x
    assert stack.find("app-x") is app_x
    assert stack.find("x") is None  # ambiguous
    assert stack.find("v") is framework_v
    assert stack.layer("app-x") is app_x
    with pytest.raises(KeyError):
        stack.layer("x")


# -- platforms and targets -------------------------------------------------------------------
def test_platforms_default_to_the_lower_layers_and_narrow_upwards(write_spec: WriteSpec) -> None:
    stack = load_stack(
        write_spec(
            RUNTIME.replace(
                "requirements = []",
                'requirements = []\nplatforms = ["macosx_arm64", "linux_x86_64", "win_amd64",'
                ' "linux_x86_64"]',
            )
            + layer_text("frameworks", "all", 'runtime = "rt"')
            + layer_text("frameworks", "linux", 'runtime = "rt"', 'platforms = ["linux_x86_64"]')
            + layer_text("frameworks", "both", 'frameworks = ["all", "linux"]')
        )
    )
    runtime = stack.runtimes[0]
    # Canonical order, duplicates dropped: the order written in the spec means nothing.
    assert runtime.platforms == ("win_amd64", "linux_x86_64", "macosx_arm64")
    all_, linux, both = stack.frameworks
    assert all_.platforms == runtime.platforms
    assert linux.platforms == ("linux_x86_64",)
    assert both.platforms == ("linux_x86_64",)


def test_empty_platforms_disable_the_layer_and_every_layer_above(write_spec: WriteSpec) -> None:
    stack = load_stack(
        write_spec(
            RUNTIME
            + layer_text("frameworks", "off", 'runtime = "rt"', "platforms = []")
            + layer_text("frameworks", "on", 'runtime = "rt"')
            + layer_text("frameworks", "above", 'frameworks = ["on", "off"]')
            + layer_text("applications", "app", 'frameworks = ["above"]', 'launch_module = "m.py"')
            + layer_text("applications", "ok", 'frameworks = ["on"]', 'launch_module = "m.py"'),
            files={"m.py": ""},
        )
    )
    enabled = {layer.build_name: layer.enabled for layer in stack.layers()}
    assert enabled == {
        "rt": True,
        "framework-off": False,
        "framework-on": True,
        "framework-above": False,
        "app-app": False,
        "app-ok": True,
    }
    assert stack.layer("app-app").platforms == ()


def test_targets_are_inherited_from_lower_layers(
    write_spec: WriteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACOSX_DEPLOYMENT_TARGET", "14.2")
    stack = load_stack(
        write_spec(
            RUNTIME
            + layer_text("frameworks", "base", 'runtime = "rt"')
            + layer_text("frameworks", "new", 'runtime = "rt"', 'linux_target = "glibc@2.35"')
            + layer_text(
                "frameworks",
                "mac",
                'runtime = "rt"',
                'macosx_target = "15"',
                'linux_target = "glibc@2.31"',
            )
            + layer_text("frameworks", "top", 'frameworks = ["mac", "new", "base"]')
            + layer_text("frameworks", "own", 'frameworks = ["top"]', 'linux_target = "glibc"')
        )
    )
    targets = {f.name: (f.linux_target, f.macosx_target) for f in stack.frameworks}
    assert stack.runtimes[0].macosx_target == "14.2"  # from the environment, for the runtime
    assert targets == {
        "base": ("2.28", "14.2"),
        "new": ("2.35", "14.2"),
        "mac": ("2.31", "15"),
        "top": ("2.35", "15"),  # the newest target beneath, compared as versions
        "own": ("2.28", "15"),  # 'glibc' alone means the default version
    }


@pytest.mark.parametrize(("env", "expected"), [("12.3", "12.3"), ("11", "11"), ("junk", "13.0")])
def test_runtime_macosx_target_defaults_from_environment(
    write_spec: WriteSpec, monkeypatch: pytest.MonkeyPatch, env: str, expected: str
) -> None:
    monkeypatch.setenv("MACOSX_DEPLOYMENT_TARGET", env)
    assert load_stack(write_spec(RUNTIME)).runtimes[0].macosx_target == expected


def test_explicit_runtime_targets(write_spec: WriteSpec) -> None:
    stack = load_stack(
        write_spec(RUNTIME + 'linux_target = "glibc@2.17"\nmacosx_target = "11.0"\n')
    )
    assert (stack.runtimes[0].linux_target, stack.runtimes[0].macosx_target) == ("2.17", "11.0")


# -- uv configuration ------------------------------------------------------------------------
def test_tool_uv_table_is_the_baseline_config(write_spec: WriteSpec) -> None:
    spec = write_spec(
        '[tool.uv]\nexclude-newer = "2025-01-01T00:00:00Z"\n' + INDEXES + RUNTIME,
        # Never read while the spec has [tool.uv]: not even its syntax matters.
        files={"venvstacks.uv.toml": "this is not toml ["},
    )
    stack = load_stack(spec)
    assert stack.uv_config_path == spec.resolve()
    assert stack.uv_config["exclude-newer"] == "2025-01-01T00:00:00Z"
    assert stack.indexes == (
        PackageIndex("cu121", "https://download.pytorch.org/whl/cu121"),
        PackageIndex("cu128", "https://download.pytorch.org/whl/cu128", explicit=True),
    )


def test_sidecar_uv_config_is_used_without_tool_uv(write_spec: WriteSpec) -> None:
    spec = write_spec(
        # Another tool's table is not [tool.uv]: the sidecar still applies.
        "[tool.other]\nkey = 1\n" + RUNTIME + 'package_indexes = {torch = "pt"}\n',
        files={
            "venvstacks.uv.toml": """
                exclude-newer = "2024-06-01T00:00:00Z"
                [[index]]
                name = "pt"
                url = "https://download.pytorch.org/whl/cpu"
                default = true
                [[index]]
                url = "https://unnamed.example/simple"
            """
        },
    )
    stack = load_stack(spec)
    assert stack.uv_config_path == spec.resolve().parent / "venvstacks.uv.toml"
    assert stack.uv_config["exclude-newer"] == "2024-06-01T00:00:00Z"
    assert stack.indexes == (
        PackageIndex("pt", "https://download.pytorch.org/whl/cpu", default=True),
    )
    assert stack.runtimes[0].package_indexes == (("torch", "pt"),)


# -- package indexes -------------------------------------------------------------------------
def test_package_indexes_are_inherited_through_every_lower_layer(write_spec: WriteSpec) -> None:
    stack = load_stack(
        write_spec(
            INDEXES
            + RUNTIME
            + 'package_indexes = {Triton = "cu121"}\npriority_indexes = ["cu128"]\n'
            + layer_text(
                "frameworks", "torch", 'runtime = "rt"', 'package_indexes = {torch = "cu121"}'
            )
            + layer_text(
                "applications",
                "app",
                'frameworks = ["torch"]',
                'launch_module = "m.py"',
                'package_indexes = {Torch_Vision = "cu121"}',
            ),
            files={"m.py": ""},
        )
    )
    runtime = stack.runtimes[0]
    assert runtime.package_indexes == (("triton", "cu121"),)  # dist names are normalised
    assert runtime.effective_package_indexes == (("triton", "cu121"),)
    assert runtime.priority_indexes == ("cu128",)
    assert dict(stack.frameworks[0].effective_package_indexes) == {
        "triton": "cu121",
        "torch": "cu121",
    }
    (application,) = stack.applications
    assert application.package_indexes == (("torch-vision", "cu121"),)
    assert dict(application.effective_package_indexes) == {
        "triton": "cu121",
        "torch": "cu121",
        "torch-vision": "cu121",
    }
    # Priority indexes apply to their own layer only.
    assert stack.frameworks[0].priority_indexes == application.priority_indexes == ()


def test_index_overrides_accept_two_framework_variants(write_spec: WriteSpec) -> None:
    text = (
        INDEXES
        + RUNTIME
        + layer_text("frameworks", "gpu", 'runtime = "rt"', 'package_indexes = {torch = "cu128"}')
        + layer_text("frameworks", "old", 'runtime = "rt"', 'package_indexes = {torch = "cu121"}')
        + layer_text("frameworks", "both", 'frameworks = ["gpu", "old"]', "{overrides}")
        + layer_text("frameworks", "above", 'frameworks = ["both"]')
    )
    with pytest.raises(SpecError) as info:
        load_stack(write_spec(text.replace("{overrides}", "")))
    assert str(info.value).endswith('add: index_overrides = {cu121 = "cu128"}')

    stack = load_stack(
        write_spec(text.replace("{overrides}", 'index_overrides = {cu121 = "cu128"}'))
    )
    effective = {f.name: dict(f.effective_package_indexes) for f in stack.frameworks}
    assert effective["both"] == {"torch": "cu128"}
    # Settled once beneath, the conflict does not come back in the layers above.
    assert effective["above"] == {"torch": "cu128"}


def test_suggested_override_line_replaces_a_self_contradicting_one(
    write_spec: WriteSpec,
) -> None:
    # The app renames cu121 to cu128 but asks for cu121 itself: what loads is no rename.
    text = (
        INDEXES
        + RUNTIME
        + layer_text("frameworks", "torch", 'runtime = "rt"', 'package_indexes = {torch = "cu121"}')
        + layer_text(
            "applications",
            "app",
            'frameworks = ["torch"]',
            'launch_module = "m.py"',
            'package_indexes = {torch = "cu121"}',
            "{overrides}",
        )
    )
    spec = write_spec(
        text.replace("{overrides}", 'index_overrides = {cu121 = "cu128"}'), files={"m.py": ""}
    )
    with pytest.raises(SpecError) as info:
        load_stack(spec)
    assert str(info.value).endswith("to accept this, remove index_overrides")
    stack = load_stack(write_spec(text.replace("{overrides}", "")))
    assert dict(stack.applications[0].effective_package_indexes) == {"torch": "cu121"}


def test_no_override_line_is_offered_when_no_rename_can_settle_it(write_spec: WriteSpec) -> None:
    # Accepting torch needs cu121 renamed to cu128, but numpy must stay on cu121 here.
    spec = write_spec(
        INDEXES
        + RUNTIME
        + layer_text("frameworks", "gpu", 'runtime = "rt"', 'package_indexes = {torch = "cu128"}')
        + layer_text(
            "frameworks",
            "old",
            'runtime = "rt"',
            'package_indexes = {torch = "cu121", numpy = "cu121"}',
        )
        + layer_text(
            "frameworks",
            "both",
            'frameworks = ["gpu", "old"]',
            'package_indexes = {numpy = "cu121"}',
        )
    )
    with pytest.raises(SpecError) as info:
        load_stack(spec)
    message = str(info.value)
    assert message.startswith("framework 'both': 'package_indexes': 'torch' comes from index")
    assert message.endswith("no index_overrides line can accept this; make package_indexes agree")


# -- select ----------------------------------------------------------------------------------
@pytest.fixture
def select_stack(write_spec: WriteSpec) -> StackSpec:
    return load_stack(
        write_spec(
            RUNTIME
            + layer_text("frameworks", "a", 'runtime = "rt"')
            + layer_text("frameworks", "b", 'runtime = "rt"')
            + layer_text("frameworks", "c", 'frameworks = ["a"]')
            + layer_text("applications", "on-c", 'frameworks = ["c"]', 'launch_module = "m.py"')
            + layer_text("applications", "on-b", 'frameworks = ["b"]', 'launch_module = "m.py"')
            + layer_text("applications", "bare", 'runtime = "rt"', 'launch_module = "m.py"'),
            files={"m.py": ""},
        )
    )


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (
            [],
            ["rt", "framework-a", "framework-b", "framework-c", "app-on-c", "app-on-b", "app-bare"],
        ),
        # The match, the layers beneath it and the layers above it (transitively), in order.
        (["a"], ["rt", "framework-a", "framework-c", "app-on-c"]),
        (["c"], ["rt", "framework-a", "framework-c", "app-on-c"]),
        (["framework-b"], ["rt", "framework-b", "app-on-b"]),
        (["app-on-*"], ["rt", "framework-a", "framework-b", "framework-c", "app-on-c", "app-on-b"]),
        (["bare", "on-b"], ["rt", "framework-b", "app-on-b", "app-bare"]),
        (["nothing*"], []),
    ],
)
def test_select_keeps_matches_with_layers_beneath_and_above(
    select_stack: StackSpec, patterns: list[str], expected: list[str]
) -> None:
    assert [layer.build_name for layer in select_stack.select(patterns)] == expected


def test_select_runtime_keeps_everything_above_it(select_stack: StackSpec) -> None:
    assert select_stack.select(["rt"]) == tuple(select_stack.layers())


def test_lower_and_upper_layers(select_stack: StackSpec) -> None:
    c = select_stack.layer("framework-c")
    assert [low.build_name for low in select_stack.lower_layers(c)] == ["framework-a", "rt"]
    assert [up.build_name for up in select_stack.upper_layers(c)] == ["app-on-c"]
    a = select_stack.layer("framework-a")
    assert [up.build_name for up in select_stack.upper_layers(a)] == ["framework-c", "app-on-c"]
    assert select_stack.runtime_of(select_stack.layer("app-on-c")) is select_stack.runtimes[0]


# -- deprecated fields -----------------------------------------------------------------------
def test_deprecated_fields_load_with_warnings(write_spec: WriteSpec) -> None:
    stack = load_stack(
        write_spec(
            """
            [[runtimes]]
            name = "old"
            fully_versioned_name = "cpython@3.11.7"
            requirements = []
            build_requirements = ["setuptools"]
            """
        )
    )
    assert stack.runtimes[0].python_implementation == PythonImplementation("cpython", "3.11.7")
    assert len(stack.warnings) == 2
    build, renamed = sorted(stack.warnings)
    assert build.startswith("runtime 'old': 'build_requirements'")
    assert "deprecated and ignored" in build
    assert renamed.startswith("runtime 'old': 'fully_versioned_name' is deprecated")
    assert "python_implementation" in renamed
