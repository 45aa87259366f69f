"""The process environment, read in one place: what venvlayers takes from it, as values.

Stages never read ``os.environ`` for settings. Their public functions take an
:class:`Environment` (the CLI reads it once with :func:`current`); given none, they read it
once there, at their own edge. Variables handed on unchanged to child processes (uv's
``UV_*``, the interpreter discovery's ``PATH``/``PYENV_ROOT``) are not settings and stay
where they are used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

RUNTIME_SOURCE = "VENVLAYERS_RUNTIME_SOURCE"
PBS_MIRROR = "VENVLAYERS_PBS_MIRROR"
CACHE_DIR = "VENVLAYERS_CACHE_DIR"
EXCLUDE_NEWER = "UV_EXCLUDE_NEWER"
MACOSX_TARGET = "MACOSX_DEPLOYMENT_TARGET"
NO_COMPILE = "VENVLAYERS_NO_COMPILE"


@dataclass(frozen=True, kw_only=True)
class Environment:
    # Where runtimes come from when neither the command line nor the spec says.
    runtime_source: str | None = None
    # A mirror URL or folder of python-build-standalone archives.
    pbs_mirror: str | None = None
    # Prepared runtimes and downloads.
    cache_dir: Path
    # uv's exclude-newer for stacks whose [tool.uv] sets none.
    exclude_newer: str | None = None
    # The default macOS deployment target of layers that set none.
    macosx_deployment_target: str | None = None
    # Deploy without byte-compiling new layers (as `deploy --no-compile`).
    no_compile: bool = False
    # Registry credentials: Docker's config file ($DOCKER_CONFIG/config.json).
    docker_config: Path | None = None

    @classmethod
    def from_mapping(cls, environ: Mapping[str, str], *, home: Path) -> Environment:
        def value(name: str) -> str | None:
            return environ.get(name) or None

        return cls(
            runtime_source=value(RUNTIME_SOURCE),
            pbs_mirror=value(PBS_MIRROR),
            cache_dir=_cache_dir(environ, home),
            exclude_newer=value(EXCLUDE_NEWER),
            macosx_deployment_target=value(MACOSX_TARGET),
            no_compile=value(NO_COMPILE) not in (None, "0"),
            docker_config=Path(value("DOCKER_CONFIG") or home / ".docker") / "config.json",
        )


def current() -> Environment:
    """This process's environment."""
    return Environment.from_mapping(os.environ, home=Path.home())


def _cache_dir(environ: Mapping[str, str], home: Path) -> Path:
    """``$VENVLAYERS_CACHE_DIR``, else ``$XDG_CACHE_HOME/venvlayers``, else ``~/.cache/venvlayers``."""
    if explicit := environ.get(CACHE_DIR):
        return Path(explicit).expanduser()
    if xdg := environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "venvlayers"
    return home / ".cache" / "venvlayers"
