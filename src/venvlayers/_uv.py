"""How venvlayers runs uv: the bundled binary, with an environment it controls."""

from __future__ import annotations

import os

# uv settings from the environment that only say how to reach things, never what to lock
# or install.
_UV_ENV_KEPT = (
    "UV_CACHE_DIR",
    "UV_NO_CACHE",
    "UV_OFFLINE",
    "UV_NATIVE_TLS",
    "UV_SYSTEM_CERTS",
    "UV_INSECURE_HOST",
    "UV_HTTP_TIMEOUT",
    "UV_HTTP_RETRIES",
    "UV_CONCURRENT_DOWNLOADS",
    "UV_KEYRING_PROVIDER",
)


def uv_binary() -> str:
    """The uv executable installed with venvlayers (the ``uv`` package from PyPI)."""
    from uv import find_uv_bin

    return os.fspath(find_uv_bin())


def uv_environment() -> dict[str, str]:
    """The process environment for uv: no user config, no downloads, no stray UV_* input."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("UV_")
        or key in _UV_ENV_KEPT
        or (key.startswith("UV_INDEX_") and key.endswith(("_USERNAME", "_PASSWORD")))
    }
    env.update({"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"})
    env.pop("VIRTUAL_ENV", None)
    return env
