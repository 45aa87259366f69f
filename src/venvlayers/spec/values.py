"""Checks of single field values: platforms, targets, file kinds, close-match hints."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from venvlayers.spec.fields import Fields
from venvlayers.spec.model import ALL_PLATFORMS, DEFAULT_GLIBC, DEFAULT_MACOSX

IMPLEMENTATION = re.compile(r"^(cpython|pypy)@(\d+\.\d+(?:\.\d+)?)$")
LAYER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
MACOSX_TARGET = re.compile(r"^\d+(?:\.\d+)?$")
_LINUX_TARGET = re.compile(r"^glibc(?:@(\d+\.\d+))?$")
_PACKAGE_MANAGER_FILES = ("pyproject.toml", "poetry.lock", "Pipfile.lock", "uv.lock")
# Names that look like platforms but are not built for: reported as unsupported, not unknown.
_UNSUPPORTED_PLATFORMS = {
    "win32": "32-bit Windows",
    "linux_i686": "32-bit Linux",
    "linux_armv7l": "32-bit ARM Linux",
    "linux_ppc64le": "POWER Linux",
    "linux_s390x": "s390x Linux",
    "macosx_universal2": "universal2 macOS (choose macosx_arm64 and/or macosx_x86_64)",
}


def check_platform(fields: Fields, platform: str) -> None:
    if platform in ALL_PLATFORMS:
        return
    if platform in _UNSUPPORTED_PLATFORMS:
        fields.fail(
            "platforms", f"{platform!r} is not supported: {_UNSUPPORTED_PLATFORMS[platform]}"
        )
    hint = close_match(platform, ALL_PLATFORMS)
    extra = f"did you mean {hint!r}? " if hint else ""
    fields.fail(
        "platforms", f"unknown platform {platform!r} ({extra}known: {', '.join(ALL_PLATFORMS)})"
    )


def linux_target(fields: Fields) -> str | None:
    """The glibc version of ``linux_target``; None when the field is absent."""
    text = fields.string("linux_target")
    if text is None:
        return None
    match = _LINUX_TARGET.match(text)
    if not match:
        fields.fail("linux_target", f"{text!r} is not 'glibc' or 'glibc@X.Y' (e.g. 'glibc@2.28')")
    return match.group(1) or DEFAULT_GLIBC


def macosx_target(fields: Fields) -> str | None:
    text = fields.string("macosx_target")
    if text is not None and not MACOSX_TARGET.match(text):
        fields.fail("macosx_target", f"{text!r} is not 'X' or 'X.Y' (e.g. '13.0')")
    return text


def default_macosx(from_environment: str | None) -> str:
    """MACOSX_DEPLOYMENT_TARGET when it is a valid target, else venvlayers' default."""
    env = from_environment or ""
    return env if MACOSX_TARGET.match(env) else DEFAULT_MACOSX


def version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def is_package_manager_file(path: Path) -> bool:
    return path.name in _PACKAGE_MANAGER_FILES or (
        path.suffix == ".toml" and path.name.startswith("pylock")
    )


def close_match(name: str, options: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(options), n=1)
    return matches[0] if matches else None
