"""The stages composed: lock -> build -> publish -> deploy -> run, for `build --publish`,
`local-export` and `up`. Only order and defaults live here; each stage does its own work.

Options are keyword-only frozen objects, filled by the CLI from its flags and the
environment, so no stage reads either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from venvlayers.build import BuildResult
    from venvlayers.deploy import DeployProgress, DeployResult, SmokeRun
    from venvlayers.publish import ExportResult, PublishResult
    from venvlayers.spec import StackSpec

Report = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    build_dir: Path | None = None  # None: _build beside the spec
    include: tuple[str, ...] = ()
    clean: bool = False
    runtime_source: str | None = None
    jobs: int = 2
    lock_if_needed: bool = False
    frozen: bool = False  # from the locks as they are; never lock


@dataclass(frozen=True, kw_only=True)
class PublishSettings:
    output_dir: Path | None = None  # None: _artifacts beside the spec
    fmt: str = "tar.zst"
    tag_outputs: bool = False
    force: bool = False
    dry_run: bool = False
    frozen: bool = False  # after `build --frozen`: the locks as they are
    sign_key: Path | None = None  # sign the stack metadata with this SSH key
    delta_from: Path | None = None  # an earlier output: write delta archives from it
    bytecode: bool = False  # ship each layer's bytecode in its archive


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    apps: tuple[str, ...] = ()  # () : every deployed app
    time_limit: float = 15.0
    enabled: bool = True
    output_to_stderr: bool = False  # the apps' stdout; stdout carries a JSON result


@dataclass(frozen=True)
class Built:
    build_dir: Path
    layers: tuple[BuildResult, ...]


@dataclass(frozen=True)
class Published:
    output_dir: Path
    result: PublishResult


def build(stack: StackSpec, settings: BuildSettings, *, report: Report) -> Built:
    """Lock what needs it (when asked), then build the selected layers."""
    from venvlayers.build import BuildOptions, build_stack, default_build_dir

    if settings.lock_if_needed:
        from venvlayers.lock import lock_stack

        lock_stack(stack, include=settings.include, if_needed=True, report=report)
    options = BuildOptions(
        build_dir=settings.build_dir or default_build_dir(stack),
        include=settings.include,
        clean=settings.clean,
        runtime_source=settings.runtime_source,
        jobs=settings.jobs,
        frozen=settings.frozen,
    )
    return Built(options.build_dir, tuple(build_stack(stack, options, report=report)))


def publish(
    stack: StackSpec,
    build_dir: Path,
    settings: PublishSettings,
    *,
    include: tuple[str, ...] = (),
    report: Report,
    progress: Any = None,
) -> Published:
    from venvlayers.publish import PublishOptions, default_output_dir, publish_stack

    options = PublishOptions(
        build_dir=build_dir,
        output_dir=settings.output_dir or default_output_dir(stack),
        fmt=settings.fmt,
        include=include,
        tag_outputs=settings.tag_outputs,
        dry_run=settings.dry_run,
        force=settings.force,
        frozen=settings.frozen,
        sign_key=settings.sign_key,
        delta_from=settings.delta_from,
        bytecode=settings.bytecode,
    )
    return Published(
        options.output_dir, publish_stack(stack, options, report=report, progress=progress)
    )


def export(
    stack: StackSpec,
    *,
    build_dir: Path,
    output_dir: Path,
    include: tuple[str, ...] = (),
    report: Report,
) -> tuple[ExportResult, tuple[str, ...]]:
    """Export the built layers, then record them as deploy would, so that `run`, `verify`
    and `gc` take the folder as a deployment; returns the result and the apps recorded."""
    from venvlayers.deploy import adopt_export
    from venvlayers.publish import export_stack

    result = export_stack(
        stack, build_dir=build_dir, output_dir=output_dir, include=include, report=report
    )
    return result, adopt_export(result.output_dir, report=report)


@dataclass(frozen=True)
class UpResult:
    built: Built
    published: Published
    deployed: DeployResult
    runs: tuple[SmokeRun, ...]


def up(
    stack: StackSpec,
    target: Path,
    *,
    build_settings: BuildSettings,
    publish_settings: PublishSettings,
    run_settings: RunSettings,
    report: Report,
    on_run: Callable[[str], None] = lambda _name: None,
    progress: Any = None,
    deploy_progress: DeployProgress | None = None,
) -> UpResult:
    """Everything, each step skipping what is done; then smoke-run the apps.

    Apps named in ``run_settings`` are checked against the spec before any work starts.
    """
    from venvlayers.deploy import deploy, smoke_run
    from venvlayers.environment import current as current_environment
    from venvlayers.errors import SpecError
    from venvlayers.lock import lock_stack

    _check_app_names(stack, run_settings.apps, SpecError)
    lock_stack(stack, if_needed=True, report=report)
    built = build(stack, build_settings, report=report)
    published = publish(stack, built.build_dir, publish_settings, report=report, progress=progress)
    deployed = deploy(
        published.output_dir, target, report=report, progress=deploy_progress,
        compile_bytecode=not current_environment().no_compile,
    )  # fmt: skip
    runs: list[SmokeRun] = []
    if run_settings.enabled:
        for name in run_settings.apps or deployed.apps:
            on_run(name)
            runs.append(
                smoke_run(
                    target,
                    name,
                    time_limit=run_settings.time_limit,
                    output_to_stderr=run_settings.output_to_stderr,
                )
            )
    return UpResult(built, published, deployed, tuple(runs))


def _check_app_names(stack: StackSpec, names: Sequence[str], error: type[Exception]) -> None:
    known = {app.name for app in stack.applications} | {
        app.build_name for app in stack.applications
    }
    for name in names:
        if name not in known:
            apps = ", ".join(app.name for app in stack.applications)
            raise error(f"--run {name}: no app of that name in {stack.path} (apps: {apps})")
