"""The content store and delta archives on a target, figures side by side (issue 17).

Run from the project root::

    .venv/bin/python bench/store.py [--build DIR] [--work-dir DIR] [--repeat N]

Layers come from a stack already built (default ``/work/scale/stack/_build``, see
bench/scale.py): its runtime ``cpython-3.12`` and its ``framework-hf`` (transformers,
tokenizers, pydantic, ...), published here as a versioned framework twice: ``@1`` as
built, ``@2`` with one small package more (jinja2 and its markupsafe, taken from the
torch layer), each with a tiny app on it. Archives, manifests and the delta are written by
venvlayers' own archive writer, as ``publish --delta-from`` writes them.

Printed, with the issue's targets:

- disk: both framework versions side by side against one (<= 1.15x), files counted once
  per inode, bytecode off (compiled bytecode is per layer, never shared);
- the delta's size against the full archive (<= 5%);
- deploying the new version onto a target holding the old one from the delta, against the
  full archive (<= 20% of its time), and into an empty target for reference;
- disk after removing every app and ``gc``, against the empty target (equal).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from venvlayers import layout  # noqa: E402
from venvlayers.contract import (  # noqa: E402
    MANIFESTS_DIR,
    ArchiveFields,
    DeltaFields,
    LayerKind,
    LayerPublication,
    write_stack_metadata,
)
from venvlayers.contract.delta import DELTA_DESCRIPTOR, DeltaDescriptor, delta_content  # noqa: E402
from venvlayers.deploy import deploy, gc, remove_apps  # noqa: E402
from venvlayers.publish.archive import ArchiveRequest, write_layer_archives  # noqa: E402

RUNTIME = "cpython-3.12"
SITE = "lib/python3.12/site-packages"
ADDED = ("jinja2", "jinja2-3.1.6.dist-info", "markupsafe", "markupsafe-3.0.4.dist-info")
MTIME = 1_700_000_000


def linked_copy(source: Path, dest: Path) -> None:
    """A copy made of hard links (the build stays untouched: files edited here are
    replaced, never written through)."""
    shutil.copytree(source, dest, symlinks=True, copy_function=os.link)


def replace_json(path: Path, data: dict[str, object]) -> None:
    path.unlink()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def make_layers(build: Path, work: Path) -> Path:
    layers = work / "layers"
    layers.mkdir()
    linked_copy(build / RUNTIME, layers / RUNTIME)
    for version in (1, 2):
        framework = layers / f"framework-hf@{version}"
        linked_copy(build / "framework-hf", framework)
        meta_path = framework / layout.LAYER_METADATA
        meta = json.loads(meta_path.read_text())
        meta["pylib_dirs"] = [f"../{RUNTIME}/{SITE}"]
        meta["dynlib_dirs"] = [f"../{RUNTIME}/share/venv/dynlib"]
        replace_json(meta_path, meta)
        if version == 2:
            for name in ADDED:
                linked_copy(build / "framework-torch" / SITE / name, framework / SITE / name)
        app = layers / f"app-on{version}"
        linked_copy(build / "app-chat", app)
        meta_path = app / layout.LAYER_METADATA
        meta = json.loads(meta_path.read_text())
        meta["pylib_dirs"] = [f"../framework-hf@{version}/{SITE}", f"../{RUNTIME}/{SITE}"]
        meta["dynlib_dirs"] = [f"../{RUNTIME}/share/venv/dynlib"]
        replace_json(meta_path, meta)
    return layers


def publication(
    name: str, target: str, kind: LayerKind, archive: Path, lower: tuple[str, ...], version: int
) -> LayerPublication:
    return LayerPublication(
        layer_name=name,
        install_target=target,
        requirements_hash="sha256:" + "0" * 64,
        lock_version=version,
        locked_at="2026-01-01T00:00:00Z",
        runtime_layer=RUNTIME,
        python_implementation="cpython@3.12.1",
        bound_to_implementation=kind is not LayerKind.RUNTIME,
        required_layers=lower,
        app_launch_module="chat" if kind is LayerKind.APPLICATION else None,
        app_launch_module_hash=None,
        kind=kind,
        archive=ArchiveFields(
            archive_build=1,
            archive_name=archive.name,
            target_platform="linux_x86_64",
            archive_size=archive.stat().st_size,
            archive_hashes={"sha256": hashlib.sha256(archive.read_bytes()).hexdigest()},
        ),
    )


def publish(layers: Path, work: Path) -> dict[str, Path]:
    """Outputs ``v1`` and ``v2`` (with the framework's delta), and ``v2-full`` (without)."""
    outs = {name: work / name for name in ("v1", "v2", "v2-full")}
    for out in outs.values():
        out.mkdir()
    names = [RUNTIME, "framework-hf@1", "app-on1", "framework-hf@2", "app-on2"]
    requests = [
        ArchiveRequest(layers / n, outs["v1" if n.endswith("1") or n == RUNTIME else "v2"] / f"{n}.tar.zst", n, MTIME)
        for n in names
    ]  # fmt: skip
    results = dict(zip(names, write_layer_archives(requests, jobs=2), strict=True))
    old, new = results["framework-hf@1"], results["framework-hf@2"]
    content = delta_content(old.manifest, new.manifest)
    descriptor = DeltaDescriptor("framework-hf@1", old.sha256, content.removed)
    (delta,) = write_layer_archives(
        [
            ArchiveRequest(
                layers / "framework-hf@2",
                outs["v2"] / f"framework-hf@2.delta-{old.sha256[:12]}.tar.zst",
                "framework-hf@2",
                MTIME,
                only=content.added,
                manifest=new.manifest,
                extra_files=((DELTA_DESCRIPTOR, descriptor.to_bytes()),),
            )
        ],
        jobs=1,
    )
    shutil.copy2(results[RUNTIME].path, outs["v2"])
    for name in ("framework-hf@2", "app-on2", RUNTIME):
        shutil.copy2(outs["v2"] / f"{name}.tar.zst", outs["v2-full"])
    (outs["v2"] / MANIFESTS_DIR).mkdir(parents=True)
    (outs["v2"] / MANIFESTS_DIR / "framework-hf@2.json").write_bytes(new.manifest)

    def layers_of(out: Path, version: int) -> list[LayerPublication]:
        fw = f"framework-hf@{version}"
        return [
            publication(RUNTIME, RUNTIME, LayerKind.RUNTIME, out / f"{RUNTIME}.tar.zst", (), 1),
            publication("framework-hf", fw, LayerKind.FRAMEWORK, out / f"{fw}.tar.zst", (), version),
            publication(f"app-on{version}", f"app-on{version}", LayerKind.APPLICATION,
                        out / f"app-on{version}.tar.zst", (fw,), 1),
        ]  # fmt: skip

    write_stack_metadata(outs["v1"], layers_of(outs["v1"], 1))
    write_stack_metadata(outs["v2-full"], layers_of(outs["v2-full"], 2))
    v2 = layers_of(outs["v2"], 2)
    fields = DeltaFields(
        archive_name=delta.path.name,
        archive_size=delta.size,
        archive_sha256=delta.sha256,
        base_install_target="framework-hf@1",
        base_archive_sha256=old.sha256,
        manifest_sha256=hashlib.sha256(new.manifest).hexdigest(),
    )
    v2[1] = v2[1].with_deltas((fields,))
    write_stack_metadata(outs["v2"], v2)
    return outs


def disk_use(*folders: Path) -> int:
    """Bytes of blocks under ``folders``, each inode counted once (as ``du``)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            info = path.lstat()
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def timed(run: Callable[[], object], prepare: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        prepare()
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", type=Path, default=Path("/work/scale/stack/_build"))
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.work_dir))
    try:
        outs = publish(make_layers(args.build, work), work)
        mb = 1_000_000
        fw1, fw2 = "framework-hf@1", "framework-hf@2"

        # Disk: one version, then both side by side.
        side = work / "side"
        side.mkdir()
        empty = disk_use(side)
        deploy(outs["v1"], side, compile_bytecode=False)
        one = disk_use(side / fw1)
        deploy(outs["v2"], side, compile_bytecode=False)
        both = disk_use(side / fw1, side / fw2)

        full_size = (outs["v2"] / f"{fw2}.tar.zst").stat().st_size
        delta_path = next(outs["v2"].glob(f"{fw2}.delta-*"))
        delta_size = delta_path.stat().st_size

        # Time: the new version onto a target holding the old one, from the delta and from
        # the full archive; and into an empty target.
        held = work / "held"
        deploy(outs["v1"], held, compile_bytecode=False)
        scratch = work / "scratch"

        def fresh_copy(source: Path | None) -> Callable[[], None]:
            def prepare() -> None:
                shutil.rmtree(scratch, ignore_errors=True)
                if source is None:
                    scratch.mkdir()
                else:
                    # cp -a keeps the layers' links to the store as they are.
                    subprocess.run(["cp", "-a", source, scratch], check=True)
                # The copy's writeback, and a previous round's, must not weigh on the round
                # measured (bench/scale.py syncs before each step too).
                os.sync()

            return prepare

        sources: dict[str, str] = {}

        def run(out: str) -> Callable[[], object]:
            def go() -> object:
                result = deploy(outs[out], scratch, compile_bytecode=False)
                sources.update(result.sources)
                return result

            return go

        t_delta = timed(run("v2"), fresh_copy(held), args.repeat)
        delta_source = sources.get(fw2)
        t_full = timed(run("v2-full"), fresh_copy(held), args.repeat)
        full_source = sources.get(fw2)
        t_empty = timed(run("v2-full"), fresh_copy(None), args.repeat)

        # gc: remove every app, collect, compare with the empty target.
        remove_apps(side, ["app-on1", "app-on2"])
        gc(side)
        after = disk_use(side)

        rows = [
            ("framework disk, one version", f"{one / mb:.1f} MB", ""),
            ("framework disk, both side by side", f"{both / mb:.1f} MB",
             f"{both / one:.3f}x one (target <= 1.15x)"),
            ("full archive of @2", f"{full_size / mb:.1f} MB", ""),
            ("delta @1 -> @2", f"{delta_size / mb:.3f} MB",
             f"{delta_size / full_size:.2%} of the full archive (target <= 5%)"),
            (f"deploy @2 onto a target holding @1, full archive ({full_source})",
             f"{t_full:.2f} s", ""),
            (f"deploy @2 onto a target holding @1, delta ({delta_source})", f"{t_delta:.2f} s",
             f"{t_delta / t_full:.1%} of the full archive (target <= 20%)"),
            ("deploy @2 into an empty target, full archive", f"{t_empty:.2f} s",
             f"delta: {t_delta / t_empty:.1%} of it"),
            ("target disk: empty / after remove + gc", f"{empty} / {after} bytes",
             "equal" if after == empty else f"{after - empty:+d} bytes"),
        ]  # fmt: skip
        width = max(len(r[0]) for r in rows)
        for label, value, note in rows:
            print(f"{label:<{width}}  {value:>16}  {note}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
