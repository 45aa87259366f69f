"""Choosing a source and preparing a runtime through the cache."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from venvlayers._proc import run
from venvlayers.environment import RUNTIME_SOURCE, Environment
from venvlayers.environment import current as current_environment
from venvlayers.errors import RuntimeProviderError, ToolError
from venvlayers.runtime._base import ProviderContext, Report, RuntimeProvider
from venvlayers.runtime.archive_source import ArchiveProvider
from venvlayers.runtime.cache import PreparedRuntime, RuntimeCache
from venvlayers.runtime.local import LocalProvider
from venvlayers.runtime.pbs_archives import parse_archive_name
from venvlayers.runtime.standalone import MIRROR_ENV, DownloadUnreachable, StandaloneProvider
from venvlayers.spec.model import RUNTIME_SOURCES, PythonImplementation

log = logging.getLogger(__name__)

SOURCE_ENV = RUNTIME_SOURCE
SOURCES = RUNTIME_SOURCES

# One module per source; a new source is one module and one line here.
PROVIDERS: dict[str, type[RuntimeProvider]] = {
    StandaloneProvider.source: StandaloneProvider,
    LocalProvider.source: LocalProvider,
    ArchiveProvider.source: ArchiveProvider,
}


def resolve_source(
    spec_source: str, cli_source: str | None = None, environment: Environment | None = None
) -> str:
    """The source in force: the command line, else ``$VENVLAYERS_RUNTIME_SOURCE``, else the spec."""
    environment = environment or current_environment()
    for value, where in (
        (cli_source, "--runtime-source"),
        (environment.runtime_source, SOURCE_ENV),
        (spec_source, "runtime source"),
    ):
        if value:
            if value not in SOURCES:
                raise RuntimeProviderError(
                    f"{where}: {value!r} is not a runtime source (one of {', '.join(SOURCES)})"
                )
            return value
    return "auto"


def prepare_runtime(
    impl: PythonImplementation,
    *,
    source: str = "auto",
    source_path: str | None = None,
    cache_dir: Path | None = None,
    environment: Environment | None = None,
    report: Report = lambda _m: None,
) -> PreparedRuntime:
    """A prepared runtime for ``impl`` from ``source``, from the cache when already prepared.

    ``environment`` gives the cache folder (unless ``cache_dir`` does) and the archive mirror.
    """
    environment = environment or current_environment()
    if source not in SOURCES:
        raise RuntimeProviderError(
            f"{impl}: {source!r} is not a runtime source (one of {', '.join(SOURCES)})"
        )
    cache = RuntimeCache(cache_dir if cache_dir is not None else environment.cache_dir)
    context = ProviderContext(
        source_path=source_path,
        downloads_dir=cache.downloads,
        report=report,
        mirror=environment.pbs_mirror,
    )
    if source == "auto":
        return _prepare_auto(impl, context, cache)
    provider = PROVIDERS[source](context)
    return _prepare_from(provider, impl, cache)


_CP = shutil.which("cp")


def copy_runtime(prepared: PreparedRuntime, dest: Path) -> None:
    """Copy a prepared runtime into the new folder ``dest`` (symlinks kept as symlinks).

    A real copy, not hard links: the layer is changed afterwards by package installs and must
    never change the cached runtime.
    """
    if dest.exists() or dest.is_symlink():
        raise RuntimeProviderError(f"cannot copy the runtime to {dest}: it already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if _CP and os.name == "posix":
            # cp copies the ~2,000 files of a runtime several times faster than copytree.
            run([_CP, "-a", prepared.root, dest], what=f"copy the runtime to {dest}")
        else:
            shutil.copytree(prepared.root, dest, symlinks=True)
    except (OSError, ToolError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise RuntimeProviderError(f"cannot copy the runtime to {dest}: {exc}") from exc


def _prepare_from(
    provider: RuntimeProvider, impl: PythonImplementation, cache: RuntimeCache
) -> PreparedRuntime:
    try:
        return _prepare_with(provider, impl, cache)
    except RuntimeProviderError as exc:
        message = str(exc)
        if message.startswith(f"{impl}: "):
            raise
        raise RuntimeProviderError(f"{impl}: {message}") from exc


def _prepare_with(
    provider: RuntimeProvider, impl: PythonImplementation, cache: RuntimeCache
) -> PreparedRuntime:
    report = provider.context.report
    candidate = provider.find(impl)
    cached = cache.get(candidate, provider.source)
    if cached is not None:
        report(f"runtime {impl}: using the cached {cached.version} ({_describe(cached)})")
        return cached
    report(
        f"runtime {impl}: preparing {candidate.version} from {provider.description}"
        f" ({candidate.origin}, found by {candidate.found_by})"
    )
    started = time.monotonic()
    try:
        prepared = cache.populate(
            candidate, provider.source, lambda dest: provider.materialize(candidate, dest)
        )
    except OSError as exc:
        raise RuntimeProviderError(
            f"{impl}: preparing from {candidate.origin} failed: {exc}"
        ) from exc
    report(f"runtime {impl}: {prepared.version} ready in {time.monotonic() - started:.1f}s")
    return prepared


def _prepare_auto(
    impl: PythonImplementation, context: ProviderContext, cache: RuntimeCache
) -> PreparedRuntime:
    """Cache, then archive mirror/folder, then download, then local relocation."""
    report = context.report
    cached = cache.newest(impl)
    if cached is not None:
        report(f"runtime {impl}: using the cached {cached.version} ({_describe(cached)})")
        return cached
    report(f"runtime {impl}: no prepared runtime in the cache {cache.folder}")

    steps = _auto_steps(context)
    reasons: list[str] = []
    unreachable: DownloadUnreachable | None = None
    for step, skip_reason in steps:
        if step is None:
            reasons.append(skip_reason)
            report(f"runtime {impl}: skipped {skip_reason}")
            continue
        try:
            prepared = _prepare_from(step, impl, cache)
        except RuntimeProviderError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, DownloadUnreachable) else exc
            if isinstance(cause, DownloadUnreachable):
                # Expected on hosts without internet access: the next source is the answer,
                # and the raw network error is only for -v.
                unreachable = cause
                log.info("runtime %s: %s", impl, cause)
                reasons.append(f"{step.source}: {cause.host} unreachable ({cause.reason})")
                continue
            reason = f"{step.source}: {str(exc).removeprefix(f'{impl}: ')}"
            reasons.append(reason)
            report(f"runtime {impl}: skipped {reason}")
            continue
        if unreachable is not None:
            report(
                f"warning: runtime {impl}: standalone builds unreachable ({unreachable.host});"
                f" using {_described_source(prepared)}"
            )
        return prepared
    raise RuntimeProviderError(f"{impl}: no runtime source can provide it: {'; '.join(reasons)}")


def _auto_steps(context: ProviderContext) -> list[tuple[RuntimeProvider | None, str]]:
    """The providers ``auto`` tries, in order; ``None`` marks a step that does not apply."""
    if context.source_path:
        return [(_provider_for_path(context), "")]
    steps: list[tuple[RuntimeProvider | None, str]] = []
    if context.mirror:
        steps.append((StandaloneProvider(context), ""))
    else:
        steps.append((None, f"archive mirror: {MIRROR_ENV} is not set"))
    steps.append((StandaloneProvider(context, mirror=None), ""))
    steps.append((LocalProvider(context), ""))
    return steps


def _provider_for_path(context: ProviderContext) -> RuntimeProvider:
    """What ``source_path`` names under ``auto``: an archive, a folder of archives, or a
    local interpreter (its executable or its prefix folder)."""
    assert context.source_path is not None
    path = Path(context.source_path).expanduser()
    if path.is_file() and parse_archive_name(path.name) is not None:
        return ArchiveProvider(context)
    if path.is_dir() and not any(path.glob("bin/python3*")):
        return StandaloneProvider(context)
    return LocalProvider(context)


def _described_source(prepared: PreparedRuntime) -> str:
    """``local CPython 3.11.7 from pyenv``: what a fallback settled on, in a few words."""
    impl = {"cpython": "CPython", "pypy": "PyPy"}.get(prepared.implementation)
    found = f" from {prepared.found_by}" if prepared.found_by else ""
    return f"{prepared.source} {impl or prepared.implementation} {prepared.version}{found}"


def _describe(prepared: PreparedRuntime) -> str:
    return f"{prepared.source}, from {prepared.origin}"
