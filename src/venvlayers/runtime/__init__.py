"""Runtime layers: base Pythons that can be unpacked anywhere and still work.

A runtime comes from one of several sources (``PROVIDERS``, one module each), is prepared
once into the user cache, and is copied from there into each runtime layer that needs it.
"""

from venvlayers.runtime._base import RuntimeCandidate, RuntimeProvider
from venvlayers.runtime.availability import (
    check_runtime_available,
    check_runtime_versions,
    runtime_problem,
)
from venvlayers.runtime.cache import PreparedRuntime, default_cache_dir
from venvlayers.runtime.discovery import interpreter_for
from venvlayers.runtime.prepare import (
    PROVIDERS,
    SOURCE_ENV,
    SOURCES,
    copy_runtime,
    prepare_runtime,
    resolve_source,
)
from venvlayers.runtime.standalone import MIRROR_ENV

__all__ = [
    "MIRROR_ENV",
    "PROVIDERS",
    "SOURCES",
    "SOURCE_ENV",
    "PreparedRuntime",
    "RuntimeCandidate",
    "RuntimeProvider",
    "check_runtime_available",
    "check_runtime_versions",
    "copy_runtime",
    "default_cache_dir",
    "interpreter_for",
    "prepare_runtime",
    "resolve_source",
    "runtime_problem",
]
