"""Compare deployed layers with the per-file manifest each one carries."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvlayers import layout
from venvlayers.contract.manifest import verify_against_manifest
from venvlayers.deploy.record import DeployedApp, DeploymentRecord, load_record
from venvlayers.errors import PublishError


@dataclass(frozen=True)
class LayerDrift:
    install_target: str
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    # Set when the layer cannot be compared at all (folder or manifest missing, ...).
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and not (self.changed or self.missing or self.unexpected)

    def render(self) -> str:
        if self.problem is not None:
            return f"{self.install_target}: {self.problem}"
        if self.ok:
            return f"{self.install_target}: ok"
        counts = ", ".join(
            f"{len(paths)} {label}"
            for label, paths in (
                ("changed", self.changed),
                ("missing", self.missing),
                ("unexpected", self.unexpected),
            )
            if paths
        )
        lines = [f"{self.install_target}: {counts}"]
        for label, paths in (
            ("changed", self.changed),
            ("missing", self.missing),
            ("unexpected", self.unexpected),
        ):
            lines.extend(f"  {label:<10}  {path}" for path in paths)
        return "\n".join(lines)


@dataclass(frozen=True)
class VerifyReport:
    target: Path
    layers: tuple[LayerDrift, ...]

    @property
    def ok(self) -> bool:
        return all(layer.ok for layer in self.layers)

    def render(self) -> str:
        drifted = sum(not layer.ok for layer in self.layers)
        summary = (
            f"{len(self.layers)} layers match their manifests"
            if drifted == 0
            else f"{drifted} of {len(self.layers)} layers differ from their manifests"
        )
        return "\n".join([*(layer.render() for layer in self.layers), summary])

    def to_json(self) -> dict[str, Any]:
        return {
            "target": os.fspath(self.target),
            "ok": self.ok,
            "layers": {
                layer.install_target: {
                    "ok": layer.ok,
                    "changed": list(layer.changed),
                    "missing": list(layer.missing),
                    "unexpected": list(layer.unexpected),
                    "problem": layer.problem,
                }
                for layer in self.layers
            },
        }


def verify(target: Path, apps: Sequence[str] = ()) -> VerifyReport:
    """Check the layers of the apps named (all deployed apps by default) against manifests.

    A name may also be a runtime or framework layer, to check only that layer.
    """
    target = Path(os.path.abspath(target))
    record = load_record(target, required=True)
    layers = _layers_to_check(record, apps, target)
    return VerifyReport(target, tuple(_verify_layer(target, name) for name in layers))


def _layers_to_check(record: DeploymentRecord, names: Sequence[str], target: Path) -> list[str]:
    if not names:
        chosen = [app.layers for app in record.apps.values()]
    else:
        chosen = []
        for name in names:
            found = record.resolve(name, target)
            chosen.append(
                found.layers if isinstance(found, DeployedApp) else (found.install_target,)
            )
    ordered: dict[str, None] = {}
    for layers in chosen:
        ordered.update(dict.fromkeys(layers))
    return list(ordered)


def _verify_layer(target: Path, name: str) -> LayerDrift:
    layer_dir = target / name
    if not layer_dir.is_dir():
        return LayerDrift(name, problem="layer folder missing; deploy again")
    try:
        manifest = json.loads((layer_dir / layout.LAYER_MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
        drift = verify_against_manifest(layer_dir, manifest, ignore=_postinstall_outputs(layer_dir))
    except FileNotFoundError:
        return LayerDrift(name, problem=f"{layout.LAYER_MANIFEST} missing; cannot compare")
    except (ValueError, PublishError) as exc:
        return LayerDrift(name, problem=f"{layout.LAYER_MANIFEST} unusable ({exc})")
    return LayerDrift(name, drift.changed, drift.missing, drift.unexpected)


def _postinstall_outputs(layer_dir: Path) -> frozenset[str]:
    """Files postinstall.py writes in a layered env besides those in the archive.

    A runtime's own interpreter is a real file from its archive, so it stays compared.
    """
    try:
        meta = json.loads((layer_dir / layout.LAYER_METADATA).read_text(encoding="utf-8"))
        python, base_python = str(meta["python"]), str(meta["base_python"])
        feature = ".".join(str(meta["py_version"]).split(".")[:2])
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()
    if python == base_python:
        return frozenset()
    bin_dir = python.rpartition("/")[0]
    links = {python, *(f"{bin_dir}/{alias}" for alias in ("python3", f"python{feature}"))}
    return frozenset({*links, *layout.BUILD_ONLY_FILES})
