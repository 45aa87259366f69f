"""The deployment record ``DIR/.venvlayers/deployment.json``: which apps use which layers.

It is written atomically once every layer of a deploy is in place. Each layer names the
token of the folder it was recorded with (see deploy/files.py): a folder that a killed
deploy moved in afterwards carries another token, so the record is never taken at its word
about a folder. Apps are keyed by their layer name (``app-classify``): deploying a new
version of an app replaces its entry, and the old version's folder is left for
:func:`venvlayers.deploy.cleanup`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from venvlayers._fs import read_json, write_json
from venvlayers.contract import LayerKind
from venvlayers.errors import DeployError

STATE_DIR = ".venvlayers"
RECORD_FILE = f"{STATE_DIR}/deployment.json"
RECORD_FORMAT = "venvlayers-deployment"
RECORD_VERSION = 2
# Records of earlier versions still load: their layers have no token, so the next deploy
# unpacks them again and verify asks for that.
_READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class DeployedLayer:
    install_target: str
    layer_name: str
    kind: LayerKind
    lock_version: int
    # sha256 (hex) of the archive the folder was unpacked from.
    sha256: str
    # The token in the folder's marker and in the name of its file record; "" when the
    # folder has neither (adopted from a local export, or an older record).
    token: str = ""


@dataclass(frozen=True)
class DeployedApp:
    layer_name: str
    install_target: str
    # Install targets from the runtime upward; the app's own layer last.
    layers: tuple[str, ...]

    @property
    def name(self) -> str:
        """The app's name in the spec."""
        return self.layer_name.removeprefix(LayerKind.APPLICATION.build_prefix)


@dataclass(frozen=True)
class DeploymentRecord:
    layers: Mapping[str, DeployedLayer] = field(default_factory=dict)
    apps: Mapping[str, DeployedApp] = field(default_factory=dict)

    def layers_in_use(self) -> set[str]:
        return {target for app in self.apps.values() for target in app.layers}

    def with_layers(self, layers: Iterable[DeployedLayer]) -> DeploymentRecord:
        return replace(self, layers={**self.layers, **{la.install_target: la for la in layers}})

    def with_apps(self, apps: Iterable[DeployedApp]) -> DeploymentRecord:
        return replace(self, apps={**self.apps, **{app.layer_name: app for app in apps}})

    def without(self, *, apps: Iterable[str] = (), layers: Iterable[str] = ()) -> DeploymentRecord:
        gone_apps, gone_layers = set(apps), set(layers)
        return DeploymentRecord(
            layers={k: v for k, v in self.layers.items() if k not in gone_layers},
            apps={k: v for k, v in self.apps.items() if k not in gone_apps},
        )

    def find_app(self, name: str) -> DeployedApp | None:
        for app in self.apps.values():
            if name in (app.name, app.layer_name, app.install_target):
                return app
        return None

    def find_layer(self, name: str) -> DeployedLayer | None:
        """A layer by install target, or by (build) name: then its newest deployed version."""
        if name in self.layers:
            return self.layers[name]
        matches = [
            layer
            for layer in self.layers.values()
            if name in (layer.layer_name, layer.layer_name.removeprefix(layer.kind.build_prefix))
        ]
        return max(matches, key=lambda layer: layer.lock_version, default=None)

    def resolve(self, name: str, target: Path) -> DeployedApp | DeployedLayer:
        """An app (preferred) or a layer named ``name``; a clear error listing what exists."""
        found = self.find_app(name) or self.find_layer(name)
        if found is None:
            apps = ", ".join(sorted(app.name for app in self.apps.values())) or "none"
            raise DeployError(f"{target}: no app or layer named {name!r} (apps: {apps})")
        return found

    def to_json(self) -> dict[str, Any]:
        def layer_ref(install_target: str) -> dict[str, str]:
            known = self.layers.get(install_target)
            return {"install_target": install_target, "sha256": known.sha256 if known else ""}

        return {
            "format": RECORD_FORMAT,
            "version": RECORD_VERSION,
            "apps": {
                key: {
                    "install_target": app.install_target,
                    "layers": [layer_ref(t) for t in app.layers],
                }
                for key, app in sorted(self.apps.items())
            },
            "layers": {
                key: {
                    "layer_name": layer.layer_name,
                    "kind": layer.kind.value,
                    "lock_version": layer.lock_version,
                    "sha256": layer.sha256,
                    "token": layer.token,
                }
                for key, layer in sorted(self.layers.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> DeploymentRecord:
        if data.get("format") != RECORD_FORMAT or data.get("version") not in _READABLE_VERSIONS:
            raise ValueError(f"unknown format {data.get('format')!r} {data.get('version')!r}")
        layers = {
            key: DeployedLayer(
                install_target=key,
                layer_name=str(entry["layer_name"]),
                kind=LayerKind(entry["kind"]),
                lock_version=int(entry["lock_version"]),
                sha256=str(entry["sha256"]),
                token=str(entry.get("token", "")),
            )
            for key, entry in data["layers"].items()
        }
        apps = {
            key: DeployedApp(
                layer_name=key,
                install_target=str(entry["install_target"]),
                layers=tuple(str(ref["install_target"]) for ref in entry["layers"]),
            )
            for key, entry in data["apps"].items()
        }
        return cls(layers=layers, apps=apps)


def load_record(target: Path, *, required: bool = False) -> DeploymentRecord:
    """The record of ``target``; empty when nothing was deployed (an error if ``required``)."""
    path = target / RECORD_FILE
    try:
        data = read_json(path)
    except FileNotFoundError:
        if required:
            raise DeployError(f"{target}: nothing deployed here (no {RECORD_FILE})") from None
        return DeploymentRecord()
    try:
        return DeploymentRecord.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DeployError(
            f"{path}: malformed deployment record ({exc}); deploy again into a new folder"
        ) from None


def save_record(target: Path, record: DeploymentRecord) -> None:
    write_json(target / RECORD_FILE, record.to_json())
