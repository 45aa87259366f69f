"""Making a copied prefix relocatable: what is copied, and how each file kind is rewritten.

Fast tests on small made-up prefixes; tests/e2e/test_runtime_local.py relocates real ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from venvlayers.runtime.relocate_copy import copy_prefix, fix_symlinks
from venvlayers.runtime.relocate_elf import elf_type
from venvlayers.runtime.relocate_text import PLACEHOLDER, prefix_pattern, rewrite_tree

OLD = "/opt/build/py-3.11"


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def all_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir() or p.is_symlink()
    }


def test_prefix_matches_whole_paths_only() -> None:
    pattern = prefix_pattern([OLD, "/install"])
    text = (
        f"-L{OLD}/lib -Wl,-rpath,{OLD}/lib '{OLD}' {OLD}-dev/lib x{OLD}/lib"
        " --prefix=/install pip/commands/install.py ./install"
    )
    assert pattern.sub("@", text) == (
        "-L@/lib -Wl,-rpath,@/lib '@' " + f"{OLD}-dev/lib x{OLD}/lib"
        " --prefix=@ pip/commands/install.py .@"
    )


def make_prefix(root: Path) -> Path:
    prefix = root / "prefix"
    write(prefix / "bin/python3.11", "ELF stand-in", 0o755)
    (prefix / "bin/python3").symlink_to("python3.11")
    write(prefix / "bin/pip3", f"#!{OLD}/bin/python3.11\n", 0o755)
    write(prefix / "bin/python3.11-config", "#!/bin/sh\n", 0o755)
    write(prefix / "bin/flask", f"#!{OLD}/bin/python3.11\n", 0o755)
    stdlib = prefix / "lib/python3.11"
    write(stdlib / "os.py", "")
    write(stdlib / "__pycache__/os.cpython-311.pyc", "")
    write(stdlib / "test/test_os.py", "")
    write(stdlib / "idlelib/pyshell.py", "")
    write(stdlib / "idlelib/idle_test/test_x.py", "")
    write(stdlib / "json/tests_are_kept_here.py", "")
    write(stdlib / "config-3.11-x86_64-linux-gnu/libpython3.11.a", "static")
    write(stdlib / "config-3.11-x86_64-linux-gnu/Makefile", "")
    for name in ("pip/__init__.py", "pip-23.2.1.dist-info/RECORD", "README.txt"):
        write(stdlib / "site-packages" / name, "")
    write(stdlib / "site-packages/requests/__init__.py", "")
    write(stdlib / "site-packages/extra.pth", "")
    write(prefix / "lib/libpython3.11.so.1.0", "lib")
    (prefix / "lib/libpython3.11.so").symlink_to("libpython3.11.so.1.0")
    write(prefix / "lib/libunrelated.so", "")
    write(prefix / "lib/pkgconfig/python-3.11.pc", "")
    write(prefix / "lib/pkgconfig/zlib.pc", "")
    write(prefix / "include/python3.11/Python.h", "")
    write(prefix / "share/man/man1/python3.11.1", "")
    return prefix


def test_copy_keeps_the_runtime_and_leaves_out_tests_caches_and_third_party(
    tmp_path: Path,
) -> None:
    prefix = make_prefix(tmp_path)
    dest = tmp_path / "copy"
    dest.mkdir()
    stats = copy_prefix(prefix, prefix / "lib/python3.11", prefix / "include/python3.11", dest)
    assert all_files(dest) == {
        "bin/python3.11",
        "bin/python3",
        "bin/pip3",
        "bin/python3.11-config",
        "lib/python3.11/os.py",
        "lib/python3.11/idlelib/pyshell.py",
        "lib/python3.11/json/tests_are_kept_here.py",
        "lib/python3.11/config-3.11-x86_64-linux-gnu/Makefile",
        "lib/python3.11/site-packages/pip/__init__.py",
        "lib/python3.11/site-packages/pip-23.2.1.dist-info/RECORD",
        "lib/python3.11/site-packages/README.txt",
        "lib/libpython3.11.so.1.0",
        "lib/libpython3.11.so",
        "lib/pkgconfig/python-3.11.pc",
        "include/python3.11/Python.h",
        "share/man/man1/python3.11.1",
    }
    assert os.readlink(dest / "lib/libpython3.11.so") == "libpython3.11.so.1.0"
    assert os.access(dest / "bin/pip3", os.X_OK)
    assert stats.third_party_scripts == ["flask"]
    assert sorted(stats.third_party_packages) == ["extra.pth", "requests"]


def test_symlinks_are_made_relative_and_kept_inside(tmp_path: Path) -> None:
    dest = tmp_path / "copy"
    write(dest / "bin/python3.11", "")
    write(tmp_path / "outside.txt", "outside")
    (dest / "bin/python3").symlink_to(f"{OLD}/bin/python3.11")
    (dest / "bin/gone").symlink_to("nowhere")
    (dest / "bin/out").symlink_to(tmp_path / "outside.txt")
    notes = fix_symlinks(dest, (OLD,))
    assert os.readlink(dest / "bin/python3") == "python3.11"
    assert not (dest / "bin/gone").exists() and not (dest / "bin/gone").is_symlink()
    assert not (dest / "bin/out").is_symlink() and (dest / "bin/out").read_text() == "outside"
    assert len(notes) == 3


SYSCONFIGDATA = f"""# system configuration generated and used by the sysconfig module
build_time_vars = {{'prefix': '{OLD}',
 'LIBDIR': '{OLD}/lib',
 'LDFLAGS': '-L{OLD}/lib -Wl,-rpath,{OLD}/lib',
 'CONFIG_ARGS': "'--prefix={OLD}' '--enable-shared'",
 'WASM_ASSETS_DIR': '.{OLD}',
 'NEIGHBOUR': '{OLD}-dev/lib',
 'SIZEOF_INT': 4}}
"""


def test_sysconfigdata_computes_its_prefix_at_import(tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    write(root / "lib/python3.11/_sysconfigdata__linux_x86_64-linux-gnu.py", SYSCONFIGDATA)
    rewrites = rewrite_tree(root, [OLD])
    assert [r.path for r in rewrites] == [
        "lib/python3.11/_sysconfigdata__linux_x86_64-linux-gnu.py"
    ]

    moved = tmp_path / "elsewhere" / "rt"
    shutil.move(root, moved)
    path = moved / "lib/python3.11/_sysconfigdata__linux_x86_64-linux-gnu.py"
    text = path.read_text()
    assert f"'{OLD}'" not in text and f"{OLD}/" not in text
    namespace: dict[str, object] = {"__file__": str(path)}
    exec(compile(text, str(path), "exec"), namespace)
    data = namespace["build_time_vars"]
    assert data == {
        "prefix": str(moved),
        "LIBDIR": f"{moved}/lib",
        "LDFLAGS": f"-L{moved}/lib -Wl,-rpath,{moved}/lib",
        "CONFIG_ARGS": f"'--prefix={moved}' '--enable-shared'",
        "WASM_ASSETS_DIR": f".{moved}",
        "NEIGHBOUR": f"{OLD}-dev/lib",
        "SIZEOF_INT": 4,
    }


def test_pkgconfig_files_use_pcfiledir(tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    pc = write(
        root / "lib/pkgconfig/python-3.11.pc",
        f"prefix={OLD}\nlibdir={OLD}/lib\nincludedir=${{prefix}}/include\n"
        "Name: Python\nDescription: x\nVersion: 3.11\n"
        f"Libs.private: -ldl -L{OLD}/lib\nLibs: -L${{libdir}}\nCflags: -I${{includedir}}/python3.11\n",
    )
    rewrite_tree(root, [OLD])
    assert pc.read_text().startswith("prefix=${pcfiledir}/../..\nlibdir=${pcfiledir}/../../lib\n")
    if shutil.which("pkg-config"):
        out = subprocess.run(
            ["pkg-config", "--cflags", "python-3.11"],
            env={**os.environ, "PKG_CONFIG_PATH": str(pc.parent)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert os.path.normpath(out.strip().removeprefix("-I")) == str(root / "include/python3.11")


def test_makefile_derives_the_prefix_from_its_location(tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    makefile = write(
        root / "lib/python3.11/config-3.11-x86_64-linux-gnu/Makefile",
        f"prefix=\t\t{OLD}\nLIBDIR=\t\t{OLD}/lib\nshow:\n\t@echo $(prefix) $(LIBDIR)\n",
    )
    rewrite_tree(root, [OLD])
    assert OLD not in makefile.read_text()
    if shutil.which("make"):
        out = subprocess.run(
            ["make", "-s", "-f", str(makefile), "show"],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        ).stdout.split()
        assert out == [str(root), f"{root}/lib"]


def test_python_config_script_uses_its_own_prefix(tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    script = write(
        root / "bin/python3.11-config",
        "#!/bin/sh\n"
        'installed_prefix () { dirname "$(cd "$(dirname "$1")" && pwd -P)"; }\n'
        'prefix_real=$(installed_prefix "$0")\n'
        f'prefix="{OLD}"\n'
        f'LIBS="-L{OLD}/lib -Wl,-rpath,{OLD}/lib"\n'
        'echo "$prefix" "$LIBS"\n',
        0o755,
    )
    rewrite_tree(root, [OLD])
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout
    real = os.path.realpath(root)
    assert out.split() == [real, f"-L{real}/lib", f"-Wl,-rpath,{real}/lib"]


def test_scripts_start_through_sh_relative_to_their_folder(tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    # A stand-in interpreter that shows how it was called.
    write(root / "bin/python3.11", '#!/bin/sh\necho "python:$*"\n', 0o755)
    pip = write(root / "bin/pip3", f"#!{OLD}/bin/python3.11\nimport sys\n", 0o755)
    deep = write(
        root / "lib/python3.11/config-3.11/python-config.py",
        f"#!{OLD}/bin/python3.11 -E\nimport sys\n",
        0o755,
    )
    rewrite_tree(root, [OLD])
    assert pip.read_text().startswith("#!/bin/sh\n'''exec' \"$(dirname -- \"$0\")/python3.11\"")
    out = subprocess.run([str(pip), "install", "x"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"python:{pip} install x"
    out = subprocess.run([str(deep), "--prefix"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"python:-E {deep} --prefix"
    # Python reads the launcher lines as a harmless string.
    compile(pip.read_text(), str(pip), "exec")


def test_other_text_files_get_a_placeholder_and_binaries_are_untouched(tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    note = write(root / "lib/python3.11/notes.txt", f"built in {OLD}\n")
    binary = root / "lib/blob.bin"
    binary.write_bytes(b"\0\1" + OLD.encode() + b"\0")
    rewrites = rewrite_tree(root, [OLD])
    assert note.read_text() == f"built in {PLACEHOLDER}\n"
    assert binary.read_bytes() == b"\0\1" + OLD.encode() + b"\0"
    assert [(r.path, r.how) for r in rewrites] == [
        ("lib/python3.11/notes.txt", f"prefix replaced by {PLACEHOLDER}")
    ]


def test_elf_type_recognises_executables_and_ignores_other_files(tmp_path: Path) -> None:
    import sys

    assert elf_type(Path(os.path.realpath(sys.executable))) in (2, 3)
    assert elf_type(write(tmp_path / "x.txt", "text")) is None
    (tmp_path / "short").write_bytes(b"\x7fELF")
    assert elf_type(tmp_path / "short") is None


@pytest.mark.parametrize(
    "origin", ["bin/python3.11", "lib/python3.11/lib-dynload/_ssl.so", "lib/libpython3.11.so.1.0"]
)
def test_runpath_entries_become_origin_relative(tmp_path: Path, origin: str) -> None:
    from venvlayers.runtime.relocate_elf import _relative_entry

    root = tmp_path / "rt"
    expected = {
        "bin/python3.11": "$ORIGIN/../lib",
        "lib/python3.11/lib-dynload/_ssl.so": "$ORIGIN/../..",
        "lib/libpython3.11.so.1.0": "$ORIGIN",
    }[origin]
    assert _relative_entry(f"{OLD}/lib", root / origin, root, [OLD]) == expected
    assert _relative_entry("/usr/lib/x86_64-linux-gnu", root / origin, root, [OLD]) == (
        "/usr/lib/x86_64-linux-gnu"
    )
