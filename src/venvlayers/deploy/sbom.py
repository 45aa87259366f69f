"""An app's whole-stack SBOM, from the SBOMs its deployed layers carry.

Each layer's ``share/venv/metadata/sbom.cdx.json`` lists what that layer installs and names
the layers beneath as components. The stack's SBOM takes the app's as its base and adds
each lower layer's packages, with the lower layer's own description in place of the
reference to it, so one document lists everything the app runs on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from venvlayers import layout
from venvlayers.deploy.record import DeployedApp, load_record
from venvlayers.errors import DeployError


def stack_sbom(target: Path, app: str) -> dict[str, Any]:
    """The CycloneDX document of ``app`` deployed in ``target`` and every layer beneath."""
    record = load_record(target, required=True)
    found = record.resolve(app, target)
    if not isinstance(found, DeployedApp):
        raise DeployError(f"{app}: not an app (name an app to get its stack's SBOM)")
    *lowers, top = found.layers
    merged = _read(target, top)
    components = {c["bom-ref"]: c for c in merged.get("components", []) if "bom-ref" in c}
    dependencies = {d["ref"]: d for d in merged.get("dependencies", []) if "ref" in d}
    for name in lowers:
        layer = _read(target, name)
        root = layer.get("metadata", {}).get("component")
        if isinstance(root, dict) and "bom-ref" in root:
            # The layer itself, as it describes itself, replaces the reference to it.
            components[root["bom-ref"]] = root
        for component in layer.get("components", []):
            components.setdefault(component["bom-ref"], component)
        for dependency in layer.get("dependencies", []):
            known = dependencies.get(dependency["ref"])
            if known is None or len(dependency.get("dependsOn", [])) > len(
                known.get("dependsOn", [])
            ):
                dependencies[dependency["ref"]] = dependency
    merged["components"] = sorted(components.values(), key=lambda c: str(c["bom-ref"]))
    merged["dependencies"] = sorted(dependencies.values(), key=lambda d: str(d["ref"]))
    return merged


def _read(target: Path, install_target: str) -> dict[str, Any]:
    path = target / install_target / layout.LAYER_SBOM
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(
            f"{install_target}: carries no SBOM (built before venvlayers wrote them;"
            " rebuild, publish and deploy it again)"
        ) from None
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path}: unreadable SBOM ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(c, dict) and "bom-ref" in c for c in data.get("components", [])
    ):
        raise DeployError(f"{path}: not a CycloneDX document venvlayers wrote")
    return data
