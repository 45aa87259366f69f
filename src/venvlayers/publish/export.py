"""`venvlayers local-export`: built layers copied into a deployed-like folder and made ready."""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from venvlayers import layout
from venvlayers._fs import atomic_write_bytes, staged_dir
from venvlayers.contract import write_stack_metadata
from venvlayers.contract.manifest import build_manifest, manifest_bytes
from venvlayers.contract.postinstall import run_postinstall
from venvlayers.publish.stage import built_layers, publications
from venvlayers.spec import StackSpec


@dataclass(frozen=True)
class ExportResult:
    output_dir: Path
    layers: tuple[str, ...]


def export_stack(
    stack: StackSpec,
    *,
    build_dir: Path,
    output_dir: Path,
    include: tuple[str, ...] = (),
    report: Callable[[str], None] = lambda _m: None,
) -> ExportResult:
    """Copy each built layer to ``output_dir/<install_target>`` and run its postinstall.py.

    Files are hardlinked where the filesystem allows; postinstall.py replaces files
    atomically rather than editing them, so the build folder is never changed through a link.
    """
    layers = built_layers(stack, build_dir, include)
    pubs = publications(stack, layers, build_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for (_, record), pub in zip(layers, pubs, strict=True):
        source = build_dir / record.install_target
        # What a killed export left behind; a failure now removes its own staging folder.
        for stale in output_dir.glob(f".{glob.escape(pub.install_target)}.*partial"):
            shutil.rmtree(stale, ignore_errors=True)
        with staged_dir(output_dir / pub.install_target) as staging:
            staging.rmdir()
            shutil.copytree(
                source, staging, symlinks=True, copy_function=_link_or_copy,
                ignore=_build_only(source),
            )  # fmt: skip
            # The manifest an archive would carry: `venvlayers verify` compares the
            # exported layer with it as with a deployed one.
            atomic_write_bytes(
                staging / layout.LAYER_MANIFEST, manifest_bytes(build_manifest(staging))
            )
            report(f"{pub.install_target}: exported")
            run_postinstall(
                staging, pub.install_target, output_dir, compile_bytecode=True, report=report
            )
    write_stack_metadata(output_dir, pubs)
    return ExportResult(output_dir, tuple(p.install_target for p in pubs))


def _build_only(root: Path) -> Callable[[str, list[str]], set[str]]:
    """Caches and the build-time files postinstall.py recreates on the target."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {name for name in names if name == "__pycache__"}
        if Path(folder) == root:
            skipped.update(name for name in names if name in layout.BUILD_ONLY_FILES)
        return skipped

    return ignore


def _link_or_copy(source: str, dest: str) -> str:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)
    return dest
