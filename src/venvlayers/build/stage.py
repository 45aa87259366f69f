"""`venvlayers build`: turn locks into layer environments in the build folder.

Layers are built in dependency order; layers that do not depend on each other build
in parallel. A layer whose inputs are unchanged since its last build is skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from venvlayers import __version__, layout
from venvlayers.build.app_modules import modules_hash
from venvlayers.build.build_record import BuildRecord, input_hash
from venvlayers.build.layer import build_layer
from venvlayers.environment import Environment
from venvlayers.errors import BuildError
from venvlayers.lock import LayerLock, read_layer_lock
from venvlayers.spec import ApplicationSpec, LayerSpec, RuntimeSpec, StackSpec


@dataclass(frozen=True)
class BuildResult:
    build_name: str
    install_target: str
    path: Path
    rebuilt: bool
    reason: str
    seconds: float = 0.0


@dataclass(frozen=True)
class BuildOptions:
    build_dir: Path
    include: tuple[str, ...] = ()
    clean: bool = False
    runtime_source: str | None = None
    jobs: int = 2
    # Settings from the process environment (runtime source, mirror, cache); None: read
    # them here, once.
    environment: Environment | None = None
    # Build from the locks as they are, even when their inputs changed (`build --frozen`).
    frozen: bool = False


def default_build_dir(stack: StackSpec) -> Path:
    return stack.spec_dir / layout.DEFAULT_BUILD_DIR


def build_stack(
    stack: StackSpec, options: BuildOptions, *, report: Callable[[str], None] = lambda _m: None
) -> list[BuildResult]:
    """Build the selected layers (and the layers beneath them when they need it)."""
    selected = [layer for layer in stack.select(options.include) if layer.enabled]
    wanted = {layer.build_name for layer in selected}
    for layer in selected:
        wanted.update(layer.lower_layers)
    layers = [layer for layer in stack.layers() if layer.build_name in wanted and layer.enabled]
    options.build_dir.mkdir(parents=True, exist_ok=True)
    futures: dict[str, Future[BuildResult]] = {}
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        for layer in layers:
            lowers = [futures[name] for name in layer.lower_layers]
            futures[layer.build_name] = pool.submit(
                _build_when_ready, stack, layer, lowers, options, report
            )
        results = [futures[layer.build_name].result() for layer in layers]
    return results


def _build_when_ready(
    stack: StackSpec,
    layer: LayerSpec,
    lowers: Sequence[Future[BuildResult]],
    options: BuildOptions,
    report: Callable[[str], None],
) -> BuildResult:
    lower_results = [future.result() for future in lowers]
    lock = read_layer_lock(stack, layer, frozen=options.frozen)
    install_target = layer.install_target(lock.lock_version)
    digest = input_hash(_inputs(layer, lock, lower_results, options))
    final = options.build_dir / install_target
    record = BuildRecord.read(options.build_dir, layer.build_name)
    if not options.clean and record and record.input_hash == digest and final.is_dir():
        return BuildResult(layer.build_name, install_target, final, False, "up to date")
    reason = "clean build" if options.clean else ("inputs changed" if record else "not built yet")
    report(f"{layer.build_name}: building ({reason})")
    built = build_layer(
        stack,
        layer,
        lock,
        final,
        lower_targets={r.build_name: r.install_target for r in lower_results},
        runtime_source=options.runtime_source,
        environment=options.environment,
        report=report,
    )
    if record and record.install_target != install_target:
        # A versioned layer moved to a new lock version: its old folder is stale.
        shutil.rmtree(options.build_dir / record.install_target, ignore_errors=True)
    BuildRecord(
        build_name=layer.build_name,
        install_target=install_target,
        input_hash=digest,
        tool_version=__version__,
        python_version=built.python_version,
        runtime_source=built.runtime_source,
    ).write(options.build_dir)
    report(f"{layer.build_name}: built in {built.seconds:.1f}s")
    return BuildResult(layer.build_name, install_target, final, True, reason, built.seconds)


def _inputs(
    layer: LayerSpec,
    lock: LayerLock,
    lowers: Sequence[BuildResult],
    options: BuildOptions,
) -> dict[str, object]:
    parts: dict[str, object] = {
        "layer": layer.build_name,
        # The hash of the lock file's text, already computed when the lock was validated.
        "lock": [lock.requirements_hash, lock.lock_version],
        "lowers": {r.build_name: _record_hash(options.build_dir, r.build_name) for r in lowers},
        "dynlib_exclude": layer.dynlib_exclude,
    }
    if isinstance(layer, RuntimeSpec):
        parts["runtime"] = [str(layer.python_implementation), layer.source, layer.source_path]
    if isinstance(layer, ApplicationSpec):
        parts["modules"] = modules_hash([layer.launch_module, *layer.support_modules])
    return parts


def _record_hash(build_dir: Path, build_name: str) -> str:
    record = BuildRecord.read(build_dir, build_name)
    if record is None:
        raise BuildError(f"{build_name}: build record missing after build")
    return record.input_hash
