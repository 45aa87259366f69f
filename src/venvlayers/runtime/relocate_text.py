"""Rewriting the build prefix out of a copied runtime's text files.

Each kind of file that names the prefix gets a form that works from any location:
sysconfig data computes the prefix from its own ``__file__``; pkg-config files use
``${pcfiledir}``; the Makefile derives it from its own path; ``python-config`` uses the
prefix it already computes from ``$0``; scripts start through ``/bin/sh`` and exec the
interpreter beside them. Anything else gets a placeholder and is reported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvlayers._fs import atomic_write_bytes

PLACEHOLDER = "@VENVLAYERS_RUNTIME_PREFIX@"
_MAKE_VARIABLE = "VENVLAYERS_RUNTIME_PREFIX"
# A prefix counts only as a whole path: "/install" must not match inside ".../install.py".
# It may follow a separator, a compiler flag glued to it ("-L/prefix/lib"), or a dot
# (WASM_ASSETS_DIR is "./<prefix>").
_SEPARATORS = r"\s'\"=,:;!(\[{"
_BEFORE = (
    rf"(?:(?<![^{_SEPARATORS}])|(?<=[{_SEPARATORS}]-[A-Za-z])|(?<=^-[A-Za-z])"
    rf"|(?<=[{_SEPARATORS}]\.)|(?<=^\.))"
)
_AFTER = r"(?=[/'\"\s:;,=)}\]]|$)"


@dataclass(frozen=True)
class Rewrite:
    """One file changed, and how."""

    path: str
    how: str


def prefix_pattern(old_prefixes: Sequence[str]) -> re.Pattern[str]:
    """Matches any of ``old_prefixes`` as a whole path (longest first)."""
    alternatives = "|".join(re.escape(p) for p in sorted(set(old_prefixes), key=len, reverse=True))
    return re.compile(f"{_BEFORE}(?:{alternatives}){_AFTER}", re.MULTILINE)


def is_text(data: bytes) -> bool:
    """Text for our purposes: no NUL byte (ELF files, archives and images all have some)."""
    return b"\0" not in data


def rewrite_tree(root: Path, old_prefixes: Sequence[str]) -> list[Rewrite]:
    """Rewrite every text file under ``root`` that names one of ``old_prefixes``."""
    pattern = prefix_pattern(old_prefixes)
    needles = [p.encode() for p in old_prefixes]
    rewrites: list[Rewrite] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if not any(n in data for n in needles) or not is_text(data):
            continue
        text = data.decode("utf-8", errors="surrogateescape")
        rel = path.relative_to(root)
        new_text, how = _rewriter_for(rel, text)(text, pattern, rel)
        if new_text != text:
            atomic_write_bytes(
                path, new_text.encode("utf-8", errors="surrogateescape"), mode=path.stat().st_mode
            )
            rewrites.append(Rewrite(rel.as_posix(), how))
    return rewrites


Rewriter = Callable[[str, re.Pattern[str], Path], tuple[str, str]]


def _rewriter_for(rel: Path, text: str) -> Rewriter:
    name = rel.name
    if name.startswith("_sysconfigdata") and name.endswith(".py") and "build_time_vars" in text:
        return rewrite_sysconfigdata
    if name.endswith(".pc"):
        return rewrite_pkgconfig
    if name == "Makefile":
        return rewrite_makefile
    if text.startswith("#!/bin/sh") and "prefix_real=" in text:
        return rewrite_config_script
    if text.startswith("#!"):
        return rewrite_shebang_script
    return rewrite_placeholder


def rewrite_sysconfigdata(text: str, pattern: re.Pattern[str], _rel: Path) -> tuple[str, str]:
    """Placeholders in the data, replaced at import time by the prefix this file lives in."""
    body = pattern.sub(PLACEHOLDER, text)
    tail = f"""

# venvlayers: this runtime was moved from where it was built. Its prefix is where this file
# lives now (<prefix>/lib/pythonX.Y/), computed at every import so the runtime may move again.
def _venvlayers_relocate():
    from os.path import abspath, dirname

    prefix = dirname(dirname(dirname(abspath(__file__))))
    for key, value in build_time_vars.items():
        if isinstance(value, str) and {PLACEHOLDER!r} in value:
            build_time_vars[key] = value.replace({PLACEHOLDER!r}, prefix)


_venvlayers_relocate()
del _venvlayers_relocate
"""
    return body.rstrip("\n") + "\n" + tail, "prefix computed from __file__ at import"


def rewrite_pkgconfig(text: str, pattern: re.Pattern[str], rel: Path) -> tuple[str, str]:
    """pkg-config expands ``${pcfiledir}`` to the folder of the .pc file."""
    up = "/".join([".."] * (len(rel.parts) - 1))
    return pattern.sub(lambda _m: f"${{pcfiledir}}/{up}", text), "${pcfiledir}-relative prefix"


def rewrite_makefile(text: str, pattern: re.Pattern[str], rel: Path) -> tuple[str, str]:
    """The prefix becomes a variable derived from the Makefile's own path."""
    up = "/".join([".."] * (len(rel.parts) - 1))
    header = (
        "# venvlayers: the prefix is derived from this Makefile's location.\n"
        f"{_MAKE_VARIABLE} := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/{up})\n"
    )
    return header + pattern.sub(f"$({_MAKE_VARIABLE})", text), "prefix derived from its path"


def rewrite_config_script(text: str, pattern: re.Pattern[str], rel: Path) -> tuple[str, str]:
    """``python-config`` computes ``prefix_real`` from ``$0`` before naming the prefix."""
    first = pattern.search(text)
    if first is not None and first.start() < text.index("prefix_real="):
        return rewrite_placeholder(text, pattern, rel)
    return pattern.sub("${prefix_real}", text), "uses its own ${prefix_real}"


def rewrite_shebang_script(text: str, pattern: re.Pattern[str], rel: Path) -> tuple[str, str]:
    """A ``#!<prefix>/bin/python`` script starts through sh and execs the interpreter by a
    path relative to the script's own folder (a shebang cannot be relative)."""
    first_line, _, rest = text.partition("\n")
    match = pattern.match(first_line, 2)
    if match is None:
        return rewrite_placeholder(text, pattern, rel)
    interpreter_and_args = first_line[match.end() :].split()
    if not interpreter_and_args:
        return rewrite_placeholder(text, pattern, rel)
    interpreter, *args = interpreter_and_args
    relative = os.path.relpath(interpreter.lstrip("/"), rel.parent.as_posix())
    quoted_args = "".join(f' "{a}"' for a in args)
    launcher = (
        "#!/bin/sh\n"
        f'\'\'\'exec\' "$(dirname -- "$0")/{relative}"{quoted_args} "$0" "$@"\n'
        "' '''\n"
    )
    body, _ = rewrite_placeholder(rest, pattern, rel)
    return launcher + body, "sh launcher relative to the script"


def rewrite_placeholder(text: str, pattern: re.Pattern[str], _rel: Path) -> tuple[str, str]:
    return pattern.sub(PLACEHOLDER, text), f"prefix replaced by {PLACEHOLDER}"
