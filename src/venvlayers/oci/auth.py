"""Registry credentials from the Docker config file, as docker, podman and oras find them.

``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``: an ``auths`` entry for the
host (``auth`` = base64 ``user:password``, or ``username``/``password``), or a credential
helper named by ``credHelpers``/``credsStore`` (``docker-credential-<name> get``).
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from venvlayers.environment import current as current_environment
from venvlayers.oci.errors import OciError


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    path = current_environment().docker_config
    assert path is not None
    return path


def _host_of(key: str) -> str:
    """``https://index.docker.io/v1/`` and ``host:5000`` both name a host."""
    key = key.removeprefix("https://").removeprefix("http://")
    return key.split("/", 1)[0]


def find_credentials(host: str, config: Path | None = None) -> Credentials | None:
    """The credentials stored for ``host`` (with its port), or None."""
    path = config or docker_config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OciError(
            f"{path}: cannot read the Docker config file ({exc}); fix or remove it"
        ) from None
    if not isinstance(data, dict):
        raise OciError(f"{path}: the Docker config file must hold a JSON object")
    helpers = data.get("credHelpers") or {}
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return _from_helper(helpers[host], host)
    auths = data.get("auths") or {}
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if _host_of(str(key)) == host and isinstance(entry, dict):
                found = _from_entry(entry, path, host)
                if found is not None:
                    return found
    store = data.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, host)
    return None


def _from_entry(entry: dict[str, object], path: Path, host: str) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth).decode("utf-8").partition(":")
        except ValueError:
            sep = ""
        if not sep:
            raise OciError(f"{path}: auths[{host!r}].auth is not base64 of user:password")
        return Credentials(user, password)
    username, secret = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(secret, str):
        return Credentials(username, secret)
    return None


def _from_helper(helper: str, host: str) -> Credentials | None:
    program = f"docker-credential-{helper}"
    try:
        result = subprocess.run(
            [program, "get"], input=host, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OciError(
            f"{host}: credential helper {program} failed ({exc}); check it works"
        ) from None
    if result.returncode != 0:
        # Helpers answer "credentials not found" with a failure: no stored login.
        return None
    try:
        data = json.loads(result.stdout)
        return Credentials(str(data["Username"]), str(data["Secret"]))
    except (ValueError, KeyError, TypeError):
        raise OciError(f"{host}: credential helper {program} gave no usable answer") from None
