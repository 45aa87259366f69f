"""The ``local`` source: copy an installed CPython and make the copy relocatable."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime import discovery
from venvlayers.runtime._base import Report, RuntimeCandidate, RuntimeProvider
from venvlayers.runtime.probe import InterpreterFacts, probe
from venvlayers.runtime.relocate_copy import copy_prefix, fix_symlinks, tree_size
from venvlayers.runtime.relocate_elf import (
    linked_binaries,
    linked_libpython,
    relocate_runpaths,
    strip_binaries,
)
from venvlayers.runtime.relocate_text import rewrite_tree


class LocalProvider(RuntimeProvider):
    """Installed interpreters: ``source_path``, else pyenv, uv-managed and PATH, in that order."""

    source = "local"

    @property
    def description(self) -> str:
        if self.context.source_path:
            return f"local interpreter {self.context.source_path}"
        return "local interpreters"

    def candidates(
        self, implementation: str, feature_version: str | None = None
    ) -> Sequence[RuntimeCandidate]:
        if implementation != "cpython":
            return []
        if self.context.source_path:
            found = [discovery.explicit(self.context.source_path)]
        else:
            found = discovery.discover(feature_version)
        return [
            RuntimeCandidate(
                implementation="cpython",
                version=interpreter.version,
                origin=str(interpreter.executable),
                found_by=interpreter.found_by,
                identity=os.path.realpath(interpreter.executable),
            )
            for interpreter in found
        ]

    def searched(self) -> str:
        if self.context.source_path:
            return ""
        uv_dir = discovery.uv_python_dir()
        places = [f"pyenv {discovery.pyenv_root() / 'versions'}"]
        if uv_dir is not None:
            places.append(f"uv {uv_dir}")
        return ", ".join([*places, "python3.X on PATH"])

    def materialize(self, candidate: RuntimeCandidate, dest: Path) -> None:
        relocate(Path(candidate.origin), dest, report=self.context.report)


def relocate(python: Path, dest: Path, *, report: Report = lambda _m: None) -> InterpreterFacts:
    """Copy the installation of ``python`` into the empty folder ``dest``, relocatable.

    Proven before returning: the copy runs, reports ``dest`` as its prefix and, when linked
    against libpython, loads the copy's libpython rather than the original's.
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeProviderError(
            f"{python}: local relocation is supported on Linux only; use the standalone source"
        )
    facts = probe(python, what="local runtime")
    prefix = Path(facts.base_prefix)
    old_prefixes = _old_prefixes(facts)
    stats = copy_prefix(prefix, Path(facts.stdlib), Path(facts.include), dest)
    if stats.third_party_packages or stats.third_party_scripts:
        report(
            f"left out {len(stats.third_party_packages)} third-party site-packages entries and"
            f" {len(stats.third_party_scripts)} third-party scripts of {prefix}"
        )
    for note in fix_symlinks(dest, old_prefixes):
        report(f"relocating {prefix}: symlink {note}")

    feature = ".".join(facts.version.split(".")[:2])
    interpreter = dest / "bin" / f"python{feature}"
    binaries = linked_binaries(dest)
    strip_note = strip_binaries(binaries)
    if strip_note is not None:
        report(f"relocating {prefix}: {strip_note}")
    relocate_runpaths(dest, binaries, old_prefixes, interpreter)
    for rewrite in rewrite_tree(dest, old_prefixes):
        if rewrite.how.startswith("prefix replaced by"):
            report(f"relocating {prefix}: {rewrite.path}: {rewrite.how}")
    check_relocated(interpreter, dest, facts)
    report(f"relocated {prefix} ({tree_size(dest) / 1e6:.1f} MB copied)")
    return facts


def _old_prefixes(facts: InterpreterFacts) -> tuple[str, ...]:
    """Every spelling of the original location: configured, actual, and symlink-resolved."""
    spellings = {facts.base_prefix, os.path.realpath(facts.base_prefix)}
    if facts.build_prefix and facts.build_prefix != "/":
        spellings.update({facts.build_prefix, os.path.realpath(facts.build_prefix)})
    return tuple(sorted(s.rstrip("/") for s in spellings if s.rstrip("/")))


def check_relocated(interpreter: Path, root: Path, original: InterpreterFacts) -> None:
    """Run the copy and refuse it unless it is self-contained."""
    what = f"relocated runtime {root}"
    facts = probe(interpreter, what=what)
    if facts.version != original.version:
        raise RuntimeProviderError(f"{what}: runs as {facts.version}, not {original.version}")
    if os.path.realpath(facts.prefix) != os.path.realpath(root):
        raise RuntimeProviderError(f"{what}: sys.prefix is {facts.prefix}, not the copy")
    if os.path.realpath(facts.build_prefix) != os.path.realpath(root):
        raise RuntimeProviderError(
            f"{what}: sysconfig prefix is {facts.build_prefix}, not the copy"
        )
    libpython = linked_libpython(interpreter)
    if libpython is not None and not os.path.realpath(libpython).startswith(
        os.path.realpath(root) + os.sep
    ):
        raise RuntimeProviderError(f"{what}: loads {libpython} instead of its own libpython")
