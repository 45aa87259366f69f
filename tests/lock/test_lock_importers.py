"""Requirement sources: every supported file format yields the pins it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvlayers.errors import LockError
from venvlayers.lock.importers import import_requirements

FIXTURES = Path(__file__).parent / "fixtures" / "lock"
WIN_ONLY = 'sys_platform == "win32"'


@pytest.mark.parametrize(
    "name", ["requirements.txt", "pyproject.toml", "poetry.lock", "Pipfile.lock", "uv.lock",
             "pylock.toml"],
)  # fmt: skip
def test_every_format_keeps_the_pins(name: str) -> None:
    lines = import_requirements(FIXTURES / name)
    by_name = {line.split("==")[0]: line for line in lines}
    assert set(by_name) == {"six", "idna", "packaging", "colorama"}, lines
    assert by_name["six"] == "six==1.16.0"
    assert by_name["packaging"] == "packaging==24.1"
    assert by_name["idna"].startswith("idna==3.7")
    assert by_name["colorama"].startswith("colorama==0.4.6")
    assert "win32" in by_name["colorama"], "the platform marker is kept"


def test_development_packages_are_left_out() -> None:
    for name in ("poetry.lock", "Pipfile.lock", "uv.lock"):
        assert not any(line.startswith("pytest") for line in import_requirements(FIXTURES / name))


def test_requirements_txt_includes_and_continuations(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0\n", encoding="utf-8")
    main = tmp_path / "requirements.txt"
    main.write_text(
        "-r base.txt\n# a comment\nidna>=3 \\\n    --hash=sha256:abc\n\nrich ; os_name == 'nt'\n",
        encoding="utf-8",
    )
    assert import_requirements(main) == ["six==1.16.0", "idna>=3", "rich ; os_name == 'nt'"]


def test_requirements_txt_refuses_index_options(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("--index-url https://example.invalid/simple\nsix\n", encoding="utf-8")
    with pytest.raises(LockError, match=r"requirements.txt: line 1: option --index-url"):
        import_requirements(path)


def test_invalid_requirement_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("six>>1\n", encoding="utf-8")
    with pytest.raises(LockError, match=r"requirements.txt: invalid requirement 'six>>1'"):
        import_requirements(path)


def test_unsupported_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_text("dependencies: []\n", encoding="utf-8")
    with pytest.raises(LockError, match=r"environment.yml: unsupported requirements file"):
        import_requirements(path)


def test_pyproject_with_dynamic_dependencies_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\ndynamic = ["dependencies"]\n', encoding="utf-8")
    with pytest.raises(LockError, match="dependencies are dynamic"):
        import_requirements(path)


def test_uv_lock_markers_follow_the_paths_to_a_package(tmp_path: Path) -> None:
    path = tmp_path / "uv.lock"
    path.write_text(
        """
version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0"
source = { editable = "." }
dependencies = [{ name = "tqdm" }, { name = "rich", marker = "os_name == 'nt'" }]

[[package]]
name = "tqdm"
version = "4.66.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "colorama", marker = "sys_platform == 'win32'" }]

[[package]]
name = "rich"
version = "13.0.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "colorama" }]

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }
""",
        encoding="utf-8",
    )
    assert import_requirements(path) == [
        "colorama==0.4.6 ; (os_name == 'nt') or (sys_platform == 'win32')",
        "rich==13.0.0 ; os_name == 'nt'",
        "tqdm==4.66.0",
    ]


def test_lock_file_entries_without_an_index_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(
        'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "local"\n'
        '[packages.directory]\npath = "."\n',
        encoding="utf-8",
    )
    with pytest.raises(LockError, match="local: no version"):
        import_requirements(path)
