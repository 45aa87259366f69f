"""Ask an interpreter about itself: version, prefixes and how it was built."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from venvlayers._proc import run
from venvlayers.errors import RuntimeProviderError, ToolError

# Runs under any Python 3; -I -S keep user site, .pth files and PYTHON* variables out.
_PROBE = """
import json, sys, sysconfig
cfg = sysconfig.get_config_var
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": "%d.%d.%d" % sys.version_info[:3],
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "executable": sys.executable,
    "build_prefix": cfg("prefix") or "",
    "stdlib": sysconfig.get_path("stdlib"),
    "include": sysconfig.get_path("include"),
    "ldlibrary": cfg("LDLIBRARY") or "",
    "shared": bool(cfg("Py_ENABLE_SHARED")),
}))
"""


@dataclass(frozen=True)
class InterpreterFacts:
    implementation: str
    version: str
    prefix: str
    base_prefix: str
    executable: str
    # Where it was configured to live (``--prefix``): what its text files still name.
    build_prefix: str
    stdlib: str
    include: str
    ldlibrary: str
    shared: bool


def clean_env() -> dict[str, str]:
    """The environment without variables that would let a broken runtime pass for working."""
    hidden = {"PYTHONHOME", "PYTHONPATH", "LD_LIBRARY_PATH", "PYTHONSTARTUP", "PYTHONUSERBASE"}
    return {key: value for key, value in os.environ.items() if key not in hidden}


def probe(python: Path, *, what: str) -> InterpreterFacts:
    """Run ``python`` and return what it says about itself; a failure is a one-line error."""
    try:
        # -B: probing a prepared runtime must not leave bytecode caches in it.
        result = run([python, "-I", "-S", "-B", "-c", _PROBE], what=what, env=clean_env())
        data = json.loads(result.stdout.strip().splitlines()[-1])
        return InterpreterFacts(**data)
    except ToolError as exc:
        first = str(exc).splitlines()
        detail = first[-1].strip() if len(first) > 1 else str(exc)
        raise RuntimeProviderError(f"{what}: {python} does not run ({detail})") from exc
    except (ValueError, TypeError, IndexError) as exc:
        raise RuntimeProviderError(f"{what}: {python} gave an unreadable answer ({exc})") from exc
