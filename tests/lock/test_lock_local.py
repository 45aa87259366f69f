"""Locking against a local folder of wheels (uv runs for real, offline, with --no-index)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import tarfile
import textwrap
import tomllib
import urllib.parse
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from packaging.pylock import Pylock

from venvlayers.build.packages import requirement_lines
from venvlayers.errors import LockError
from venvlayers.lock import (
    LockResult,
    lock_stack,
    lock_status,
    marker_environment,
    read_layer_lock,
)
from venvlayers.lock.model import LockedPackage
from venvlayers.lock.uvproject import _preferences_lock
from venvlayers.spec import StackSpec, load_stack

SPEC = """
[[runtimes]]
name = "cpython@3.11"
python_implementation = "cpython@3.11"
requirements = ["alpha"]
platforms = ["linux_x86_64", "win_amd64", "macosx_arm64"]

[[frameworks]]
name = "fw"
runtime = "cpython@3.11"
requirements = ["beta"]

[[applications]]
name = "app"
launch_module = "app.py"
frameworks = ["fw"]
requirements = ["gamma"]
versioned = true

[[applications]]
name = "plain"
launch_module = "plain.py"
frameworks = ["fw"]
requirements = []
requirements_from = ["app-requirements.txt"]
"""
LAYERS = ("cpython@3.11", "framework-fw", "app-app", "app-plain")


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires: Sequence[str] = (),
) -> Path:
    """A minimal valid wheel: one module, METADATA (with Requires-Dist), WHEEL, RECORD."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    path = folder / f"{name}-{version}-{tag}.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            data = text.encode()
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def make_sdist(folder: Path, name: str, version: str) -> Path:
    """An sdist file; uv never opens it while a wheel of the version gives the metadata."""
    path = folder / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        data = f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n".encode()
        info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def _write_wheels(folder: Path) -> None:
    make_wheel(folder, "alpha", "1.0")
    make_wheel(folder, "alpha", "2.0")
    make_wheel(folder, "beta", "1.0", requires=["alpha>=1", 'winonly; sys_platform == "win32"'])
    make_wheel(folder, "winonly", "1.0")
    make_wheel(folder, "gamma", "1.0")
    make_wheel(folder, "gamma", "2.0")
    make_wheel(folder, "delta", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_sdist(folder, "delta", "1.0")
    make_wheel(folder, "zeta", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(folder, "epsilon", "1.0", tag="cp311-cp311-manylinux_2_34_x86_64")


def _write_stack(folder: Path) -> None:
    folder.mkdir()
    (folder / "venvstacks.toml").write_text(SPEC, encoding="utf-8")
    (folder / "app.py").write_text("print('app')\n", encoding="utf-8")
    (folder / "plain.py").write_text("print('plain')\n", encoding="utf-8")
    (folder / "app-requirements.txt").write_text("gamma<2\n", encoding="utf-8")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels and a stack, locked once (``locked``) and left unlocked (``stack``)."""
    root = tmp_path_factory.mktemp("lock-template")
    _write_wheels(root / "wheels")
    _write_stack(root / "stack")
    shutil.copytree(root / "stack", root / "locked")
    lock_stack(load_stack(root / "locked"), local_wheels=root / "wheels", no_index=True)
    return root


@pytest.fixture
def wheels(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template / "wheels", tmp_path / "wheels")
    return tmp_path / "wheels"


@pytest.fixture
def stack_dir(template: Path, tmp_path: Path) -> Path:
    """An unlocked stack."""
    shutil.copytree(template / "stack", tmp_path / "stack")
    return tmp_path / "stack"


@pytest.fixture
def locked_dir(template: Path, tmp_path: Path, wheels: Path) -> Path:
    """The same stack, already locked (a copy of one lock made per test module)."""
    shutil.copytree(template / "locked", tmp_path / "stack")
    return tmp_path / "stack"


Lock = Callable[..., list[LockResult]]


@pytest.fixture
def lock(wheels: Path) -> Lock:
    def run(stack: StackSpec, **options: object) -> list[LockResult]:
        return lock_stack(stack, local_wheels=wheels, no_index=True, **options)  # type: ignore[arg-type]

    return run


def edit_spec(stack_dir: Path, old: str, new: str, count: int = 1) -> StackSpec:
    spec = stack_dir / "venvstacks.toml"
    text = spec.read_text(encoding="utf-8")
    assert old in text, old
    spec.write_text(text.replace(old, new, count), encoding="utf-8")
    return load_stack(stack_dir)


def invalid_layers(stack: StackSpec) -> set[str]:
    return {layer.build_name for layer in stack.layers() if not lock_status(stack, layer).valid}


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def no_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the resolver must not run")

    monkeypatch.setattr("venvlayers.lock.layer_resolve.resolve", refuse)


def test_lock_writes_the_three_files_and_marks_packages_from_below(
    stack_dir: Path, lock: Lock
) -> None:
    stack = load_stack(stack_dir)
    results = lock(stack)
    assert [(r.build_name, r.changed, r.skipped) for r in results] == [
        (name, True, False) for name in LAYERS
    ]
    folder = stack_dir / "requirements" / "framework-fw"
    assert sorted(p.name for p in folder.iterdir()) == [
        "packages-framework-fw.txt", "pylock.framework-fw.meta.json", "pylock.framework-fw.toml",
    ]  # fmt: skip
    assert (stack_dir / "requirements" / "cpython@3.11" / "pylock.cpython@3_11.toml").is_file()

    pylock = tomllib.loads((folder / "pylock.framework-fw.toml").read_text(encoding="utf-8"))
    Pylock.from_dict(pylock)  # a valid PEP 751 lock
    packages = {p["name"]: p for p in pylock["packages"]}
    assert packages["alpha"]["version"] == "2.0"
    assert packages["alpha"]["tool"]["venvlayers"]["provided_by"] == "cpython@3.11"
    assert "tool" not in packages["beta"]
    assert (
        packages["winonly"]["marker"] == "sys_platform == 'win32' and platform_machine == 'AMD64'"
    )

    meta = json.loads((folder / "pylock.framework-fw.meta.json").read_text(encoding="utf-8"))
    for key in ("requirements_hash", "lock_input_hash", "other_inputs_hash", "version_inputs_hash"):
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", meta[key]), key
    assert meta["lock_version"] == 1
    assert meta["locked_at"].endswith("+00:00")

    summary = (folder / "packages-framework-fw.txt").read_text(encoding="utf-8")
    own, inherited = summary.split("# Inherited from lower layers")
    assert "beta==1.0" in own and "alpha" not in own
    assert "alpha==2.0  # from cpython@3.11" in inherited

    plain = read_layer_lock(stack, stack.layer("app-plain"))
    assert {(p.name, p.version) for p in plain.own_packages} == {("gamma", "1.0")}


def test_the_build_installs_own_packages_for_the_platform(locked_dir: Path, lock: Lock) -> None:
    stack = load_stack(locked_dir)
    framework = read_layer_lock(stack, stack.layer("framework-fw"))
    linux = requirement_lines(framework, marker_environment("linux_x86_64", "cpython", "3.11"))
    windows = requirement_lines(framework, marker_environment("win_amd64", "cpython", "3.11"))
    assert [line.split()[0] for line in linux] == ["beta"]
    # Wheels from --local-wheels are installed from the file the lock names.
    match = re.fullmatch(r"beta @ (file://\S+) --hash=sha256:[0-9a-f]{64}", linux[0])
    assert match and Path(urllib.parse.urlparse(match[1]).path).is_file()
    assert [line.split()[0] for line in windows] == ["beta", "winonly"]


def test_relocking_unchanged_inputs_rewrites_nothing(locked_dir: Path, lock: Lock) -> None:
    stack = load_stack(locked_dir)
    before = snapshot(locked_dir / "requirements")
    results = lock(stack)
    assert [r.changed for r in results] == [False] * len(LAYERS)
    assert not any(r.skipped for r in results)
    assert snapshot(locked_dir / "requirements") == before


def test_a_lock_written_by_another_uv_release_is_kept(locked_dir: Path, lock: Lock) -> None:
    """Wheel fields that some uv releases add (size, upload-time) are not the lock."""
    folder = locked_dir / "requirements" / "app-app"
    lock_file, meta_file = folder / "pylock.app-app.toml", folder / "pylock.app-app.meta.json"
    text = re.sub(
        r"hashes = \{",
        "upload-time = 2024-01-02T03:04:05Z, size = 1234, hashes = {",
        lock_file.read_text(encoding="utf-8"),
    )
    assert "size = 1234" in text
    lock_file.write_text(text, encoding="utf-8")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta["requirements_hash"] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    meta_file.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    stack = load_stack(locked_dir)
    assert invalid_layers(stack) == set()
    before = snapshot(locked_dir / "requirements")

    results = {r.build_name: r for r in lock(stack)}
    assert not results["app-app"].changed
    assert results["app-app"].lock_version == 1, "a versioned layer keeps its version"
    assert snapshot(locked_dir / "requirements") == before


def test_preferences_carry_the_cutoff_so_older_uv_keeps_them() -> None:
    """uv before 0.13 drops a uv.lock whose options lack exclude-newer, and its pins."""
    package = LockedPackage("alpha", "1.0", None, (), None)
    text = _preferences_lock([package], ">=3.11", "2026-11-21T00:00:00Z")
    assert text is not None
    data = tomllib.loads(text)
    assert data["options"] == {"exclude-newer": "2026-11-21T00:00:00Z"}
    assert data["package"][0]["version"] == "1.0"
    no_cutoff = _preferences_lock([package], ">=3.11", None)
    assert no_cutoff is not None and "options" not in tomllib.loads(no_cutoff)


def test_if_needed_on_a_locked_stack_never_runs_the_resolver(
    locked_dir: Path, lock: Lock, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_resolver(monkeypatch)
    results = lock(load_stack(locked_dir), if_needed=True)
    assert all(r.skipped and not r.changed for r in results)


def test_versioned_layer_bumps_lock_version_when_its_lock_changes(
    locked_dir: Path, lock: Lock, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = edit_spec(locked_dir, 'requirements = ["gamma"]', 'requirements = ["gamma<2"]')
    versions = {r.build_name: r.lock_version for r in lock(stack, if_needed=True)}
    assert versions == {"cpython@3.11": 1, "framework-fw": 1, "app-app": 2, "app-plain": 1}
    assert read_layer_lock(stack, stack.layer("app-app")).lock_version == 2

    # The launch module's content: a new version of the same lock, without the resolver.
    lock_file = locked_dir / "requirements" / "app-app" / "pylock.app-app.toml"
    before = lock_file.read_bytes()
    (locked_dir / "app.py").write_text("print('app, improved')\n", encoding="utf-8")
    assert invalid_layers(stack) == {"app-app"}
    no_resolver(monkeypatch)
    results = {r.build_name: r for r in lock(stack, if_needed=True)}
    assert results["app-app"].lock_version == 3 and results["app-app"].changed
    assert lock_file.read_bytes() == before
    assert invalid_layers(stack) == set()


CHANGES: list[tuple[str, str, str, set[str]]] = [
    ("runtime requirements", 'requirements = ["alpha"]', 'requirements = ["alpha>=1"]',
     set(LAYERS)),
    ("framework requirements", 'requirements = ["beta"]', 'requirements = ["beta", "gamma"]',
     {"framework-fw", "app-app", "app-plain"}),
    ("app requirements", 'requirements = ["gamma"]', 'requirements = ["gamma>=1"]', {"app-app"}),
    ("runtime X.Y", 'python_implementation = "cpython@3.11"',
     'python_implementation = "cpython@3.12"', set(LAYERS)),
    ("runtime X.Y.Z", 'python_implementation = "cpython@3.11"',
     'python_implementation = "cpython@3.11.9"', set()),
    ("framework platforms", 'requirements = ["beta"]',
     'requirements = ["beta"]\nplatforms = ["linux_x86_64", "win_amd64"]',
     {"framework-fw", "app-app", "app-plain"}),
    ("app linux_target", 'requirements = ["gamma"]',
     'requirements = ["gamma"]\nlinux_target = "glibc@2.34"', {"app-app"}),
    ("runtime macosx_target", 'requirements = ["alpha"]',
     'requirements = ["alpha"]\nmacosx_target = "14.0"', set(LAYERS)),
    ("framework versioned", 'requirements = ["beta"]', 'requirements = ["beta"]\nversioned = true',
     {"framework-fw", "app-app", "app-plain"}),
    ("index settings", "[[runtimes]]",
     '[tool.uv]\nindex-strategy = "unsafe-best-match"\n\n[[runtimes]]', set(LAYERS)),
]  # fmt: skip


@pytest.mark.parametrize(("change", "old", "new", "expected"), CHANGES, ids=[c[0] for c in CHANGES])
def test_invalidation_rules(
    locked_dir: Path, lock: Lock, change: str, old: str, new: str, expected: set[str]
) -> None:
    stack = load_stack(locked_dir)
    assert invalid_layers(stack) == set()
    assert invalid_layers(edit_spec(locked_dir, old, new)) == expected, change


def test_module_and_requirement_file_changes(locked_dir: Path, lock: Lock) -> None:
    stack = load_stack(locked_dir)
    # A non-versioned app's launch module: nothing to relock.
    (locked_dir / "plain.py").write_text("print('changed')\n", encoding="utf-8")
    assert invalid_layers(stack) == set()
    # A versioned app's launch module: only that app (its version is due).
    (locked_dir / "app.py").write_text("print('changed')\n", encoding="utf-8")
    assert invalid_layers(stack) == {"app-app"}
    assert "launch module" in lock_status(stack, stack.layer("app-app")).reason
    # A requirements_from file's content.
    (locked_dir / "app-requirements.txt").write_text("gamma<2\nalpha\n", encoding="utf-8")
    assert invalid_layers(stack) == {"app-app", "app-plain"}


def test_include_relocks_the_selection_and_above_only(locked_dir: Path, lock: Lock) -> None:
    results = lock(load_stack(locked_dir), include=["fw"])
    assert [(r.build_name, r.skipped) for r in results] == [
        ("cpython@3.11", True), ("framework-fw", False), ("app-app", False), ("app-plain", False),
    ]  # fmt: skip


def test_relock_keeps_previous_pins_unless_reset(stack_dir: Path, lock: Lock) -> None:
    stack = edit_spec(stack_dir, 'requirements = ["alpha"]', 'requirements = ["alpha<2"]')
    lock(stack)
    stack = edit_spec(stack_dir, 'requirements = ["alpha<2"]', 'requirements = ["alpha>=1"]')
    lock(stack)
    runtime = stack.layer("cpython@3.11")
    assert [p.version for p in read_layer_lock(stack, runtime).packages] == ["1.0"]
    lock(stack, reset_lock=["cpython@*"])
    assert [p.version for p in read_layer_lock(stack, runtime).packages] == ["2.0"]


def test_conflict_with_a_lower_layer_names_the_layer_the_packages_and_the_pin(
    locked_dir: Path, lock: Lock
) -> None:
    stack = edit_spec(locked_dir, 'requirements = ["beta"]', 'requirements = ["beta", "alpha<2"]')
    with pytest.raises(LockError) as caught:
        lock(stack)
    assert str(caught.value).splitlines() == [
        "framework 'fw': cannot be locked: conflicting requirements: the layer requires alpha<2"
        " and alpha==2.0",
        "  pinned by lower layers: alpha==2.0 (from cpython@3.11)",
    ]


def test_missing_wheels_are_listed_with_the_platforms_that_work(
    stack_dir: Path, lock: Lock
) -> None:
    stack = edit_spec(stack_dir, 'requirements = ["beta"]', 'requirements = ["beta", "delta"]')
    with pytest.raises(LockError) as caught:
        lock(stack)
    assert str(caught.value) == textwrap.dedent(
        """\
        framework 'fw': no wheel for these packages on these platforms (sdists are never built):
          delta==1.0: win_amd64, macosx_arm64
          every package has wheels for: platforms = ["linux_x86_64"] (set that for this layer), or pin versions that have wheels, or lock with --accept-missing-wheels"""
    )
    warnings: list[str] = []
    lock(stack, allow_missing=True, report=warnings.append)
    assert any(w.startswith("warning: framework 'fw': no wheel") for w in warnings)
    assert lock_status(stack, stack.layer("framework-fw")).valid


def test_missing_wheels_without_sdists_are_found_platform_by_platform(
    stack_dir: Path, lock: Lock
) -> None:
    stack = edit_spec(stack_dir, 'requirements = ["beta"]', 'requirements = ["beta", "zeta"]')
    with pytest.raises(LockError) as caught:
        lock(stack)
    message = str(caught.value)
    assert "  zeta==1.0: win_amd64, macosx_arm64\n" in message
    assert 'platforms = ["linux_x86_64"]' in message


def test_linux_target_decides_which_manylinux_wheels_fit(stack_dir: Path, lock: Lock) -> None:
    stack = edit_spec(
        stack_dir,
        'requirements = ["beta"]',
        'requirements = ["beta", "epsilon"]\nplatforms = ["linux_x86_64"]',
    )
    with pytest.raises(LockError, match=r"epsilon==1\.0: linux_x86_64"):
        lock(stack)
    stack = edit_spec(stack_dir, 'platforms = ["linux_x86_64"]',
                      'platforms = ["linux_x86_64"]\nlinux_target = "glibc@2.34"')  # fmt: skip
    lock(stack)
    framework = read_layer_lock(stack, stack.layer("framework-fw"))
    epsilon = next(p for p in framework.packages if p.name == "epsilon")
    assert [w.name for w in epsilon.wheels] == ["epsilon-1.0-cp311-cp311-manylinux_2_34_x86_64.whl"]


def test_exclude_newer_is_the_lock_time(
    stack_dir: Path, lock: Lock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_EXCLUDE_NEWER", "2030-05-01T00:00:00Z")
    stack = load_stack(stack_dir)
    lock(stack)
    assert read_layer_lock(stack, stack.layer("framework-fw")).locked_at == (
        "2030-05-01T00:00:00+00:00"
    )
    monkeypatch.delenv("UV_EXCLUDE_NEWER")
    # The environment is read once, when the spec is loaded.
    assert invalid_layers(stack) == set()
    assert invalid_layers(load_stack(stack_dir)) == set(LAYERS), "exclude-newer is an input"


def test_reading_a_missing_lock_says_what_to_do(stack_dir: Path) -> None:
    stack = load_stack(stack_dir)
    with pytest.raises(LockError, match=r"^cpython@3\.11: no valid lock; run `venvlayers lock"):
        read_layer_lock(stack, stack.layer("cpython@3.11"))
    status = lock_status(stack, stack.layer("app-app"))
    assert not status.valid and status.reason == "not locked yet"


def test_a_hand_edited_lock_is_invalid(locked_dir: Path, lock: Lock) -> None:
    stack = load_stack(locked_dir)
    path = locked_dir / "requirements" / "cpython@3.11" / "pylock.cpython@3_11.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('"2.0"', '"1.0"'), encoding="utf-8")
    assert invalid_layers(stack) == set(LAYERS)


def test_disabled_layers_are_not_locked(stack_dir: Path, lock: Lock) -> None:
    stack = edit_spec(stack_dir, 'name = "plain"', 'name = "plain"\nplatforms = []')
    assert [r.build_name for r in lock(stack)] == ["cpython@3.11", "framework-fw", "app-app"]


@pytest.mark.network
def test_a_named_default_index_is_used_not_pypi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stack whose [tool.uv] names its own default index never locks from PyPI instead.

    The index is unreachable on purpose: locking must fail naming it (before the fix uv
    ignored the project's indexes and took six from pypi.org).
    """
    (tmp_path / "venvstacks.toml").write_text(
        textwrap.dedent(
            """
            [[tool.uv.index]]
            name = "private"
            url = "http://127.0.0.1:9/simple"
            default = true

            [[runtimes]]
            name = "cpython@3.11"
            python_implementation = "cpython@3.11"
            requirements = ["six"]
            platforms = ["linux_x86_64"]
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(LockError, match=r"127\.0\.0\.1:9"):
        lock_stack(load_stack(tmp_path))
    assert not (tmp_path / "requirements").exists()
