"""Deploy venvstacks archives the way its documentation leaves it to users.

venvstacks publishes archives and metadata but has no deploy command: a user unpacks every
layer archive side by side and runs each layer's ``postinstall.py`` with its base Python,
runtime first, then frameworks, then applications (the order of ``venvstacks.json``, where a
layer only refers to layers defined before it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = Path("__venvstacks__", "venvstacks.json")
LAYER_CONFIG = Path("share", "venv", "metadata", "venvstacks_layer.json")
LAYER_KINDS = ("runtimes", "frameworks", "applications")


@dataclass(frozen=True)
class PublishedLayer:
    layer_name: str
    install_target: str
    archive: Path
    launch_module: str | None


def published_layers(artifacts: Path) -> list[PublishedLayer]:
    """Every layer in ``artifacts``' stack manifest, lower layers first."""
    manifest: dict[str, Any] = json.loads((artifacts / MANIFEST).read_text(encoding="utf-8"))
    return [
        PublishedLayer(
            layer_name=entry["layer_name"],
            install_target=entry["install_target"],
            archive=artifacts / entry["archive_name"],
            launch_module=entry.get("app_launch_module"),
        )
        for kind in LAYER_KINDS
        for entry in manifest["layers"].get(kind, [])
    ]


def _unpack(archive: Path, target: Path) -> None:
    # GNU tar when present: the fastest way a user would unpack, so the comparison does not
    # handicap venvstacks with Python-level extraction.
    tar = shutil.which("tar")
    if tar:
        subprocess.run([tar, "-xf", str(archive), "-C", str(target)], check=True)
        return
    with tarfile.open(archive) as bundle:
        bundle.extractall(target, filter="data")


def deploy(artifacts: Path, target: Path) -> list[PublishedLayer]:
    """Unpack every layer into ``target`` and run their ``postinstall.py`` in order."""
    layers = published_layers(artifacts)
    target.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        _unpack(layer.archive, target)
    for layer in layers:
        layer_dir = target / layer.install_target
        config = json.loads((layer_dir / LAYER_CONFIG).read_text(encoding="utf-8"))
        base_python = layer_dir / config["base_python"]
        subprocess.run([str(base_python), str(layer_dir / "postinstall.py")], check=True)
    return layers


def app_command(target: Path, layer: PublishedLayer) -> list[str]:
    """How a deployed venvstacks app is launched: its env's python with ``-m``."""
    if layer.launch_module is None:
        raise ValueError(f"{layer.layer_name} is not an application layer")
    return [str(target / layer.install_target / "bin" / "python"), "-m", layer.launch_module]


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: _venvstacks_deploy.py ARTIFACTS TARGET")
    for deployed in deploy(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"deployed {deployed.install_target}")
