"""What each command reports: one JSON document (``--json``, shapes in docs/cli.md) or lines
for people, built from the same values so the two never tell different stories."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvlayers import ui

if TYPE_CHECKING:
    from venvlayers import pipeline
    from venvlayers.build import BuildResult
    from venvlayers.deploy import DeployResult, SmokeRun
    from venvlayers.lock import LockResult
    from venvlayers.publish import ExportResult


def _path(path: Path | None) -> str | None:
    return None if path is None else os.fspath(path)


def lock_layers(results: Sequence[LockResult], *, check: bool) -> list[dict[str, Any]]:
    def action(result: LockResult) -> str:
        if check:
            return "stale" if result.stale else "valid"
        if result.skipped:
            return "skipped"
        return "updated" if result.changed else "unchanged"

    return [
        {
            "name": result.build_name,
            "action": action(result),
            "reason": result.reason,
            "lock_version": result.lock_version,
            "seconds": round(result.seconds, 3),
            "lock_path": _path(result.lock_path),
        }
        for result in results
    ]


def lock_lines(layers: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for layer in layers:
        detail = f"lock_version {layer['lock_version']}"
        if layer["action"] == "stale":
            detail = layer["reason"]
        elif layer["action"] in ("updated", "unchanged") and layer["seconds"]:
            detail += f", {layer['seconds']:.1f} s"
        lines.append(f"{layer['name']}: {layer['action']} ({detail})")
    return lines


def build_doc(built: pipeline.Built) -> dict[str, Any]:
    def entry(result: BuildResult) -> dict[str, Any]:
        return {
            "name": result.build_name,
            "install_target": result.install_target,
            "action": "built" if result.rebuilt else "up to date",
            "reason": result.reason,
            "seconds": round(result.seconds, 3),
            "path": _path(result.path),
        }

    return {"build_dir": _path(built.build_dir), "layers": [entry(r) for r in built.layers]}


def build_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    for layer in doc["layers"]:
        took = f", {layer['seconds']:.1f} s" if layer["action"] == "built" else ""
        lines.append(f"{layer['install_target']}: {layer['action']} ({layer['path']}{took})")
    return lines


def publish_doc(published: pipeline.Published) -> dict[str, Any]:
    result = published.result
    output = published.output_dir
    if result.plan:
        return {"output_dir": _path(output), "dry_run": True, "layers": list(result.plan)}
    layers = []
    for layer in result.layers:
        assert layer.archive is not None
        layers.append(
            {
                "name": layer.layer_name,
                "install_target": layer.install_target,
                "action": "reused" if layer.install_target in result.reused else "written",
                "archive": _path(output / layer.archive.archive_name),
                "size": layer.archive.archive_size,
                "sha256": layer.archive.archive_hashes.get("sha256"),
            }
        )
    metadata = output / "__venvstacks__" / "venvstacks.json"
    return {"output_dir": _path(output), "dry_run": False, "metadata": _path(metadata),
            "layers": layers}  # fmt: skip


def publish_lines(doc: dict[str, Any]) -> list[str]:
    return [
        f"{Path(layer['archive']).name}: {layer['action']} ({ui.size(layer['size'])} compressed)"
        for layer in doc["layers"]
    ]


def export_doc(result: ExportResult, apps: Sequence[str]) -> dict[str, Any]:
    return {
        "output_dir": _path(result.output_dir),
        "layers": [
            {"name": name, "action": "exported", "path": _path(result.output_dir / name)}
            for name in result.layers
        ],
        "apps": list(apps),
    }


def deploy_doc(source: Path, target: Path, result: DeployResult, seconds: float) -> dict[str, Any]:
    archives = _published_archives(source)

    def entry(name: str, action: str) -> dict[str, Any]:
        archive = archives.get(name, {})
        return {"name": name, "action": action, "path": _path(target / name), **archive}

    return {
        "source": _path(source),
        "target": _path(target),
        "seconds": round(seconds, 3),
        "layers": [entry(n, "deployed") for n in result.deployed]
        + [entry(n, "already deployed") for n in result.skipped],
        "apps": list(result.apps),
    }


def _published_archives(source: Path) -> dict[str, dict[str, Any]]:
    """Archive name, size and hash of each layer, from the metadata deploy just checked."""
    from venvlayers.contract import read_stack_metadata

    _, published = read_stack_metadata(source)
    return {
        layer.install_target: {
            "archive": layer.archive.archive_name,
            "size": layer.archive.archive_size,
            "sha256": layer.archive.archive_hashes.get("sha256"),
        }
        for layer in published
        if layer.archive is not None
    }


def deploy_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    for layer in doc["layers"]:
        size = f" ({ui.size(layer['size'])} archive)" if "size" in layer else ""
        lines.append(f"{layer['name']}: {layer['action']}{size}")
    return lines


def runs_doc(runs: Sequence[SmokeRun], time_limit: float) -> list[dict[str, Any]]:
    def action(run: SmokeRun) -> str:
        if run.status is None:
            return "stopped"
        return "ran" if run.status == 0 else "failed"

    return [
        {"name": run.name, "action": action(run), "status": run.status, "ok": run.ok,
         "seconds": round(run.seconds, 3), "time_limit": time_limit}
        for run in runs
    ]  # fmt: skip


def run_lines(runs: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Lines for people: (results, errors)."""
    results, errors = [], []
    for run in runs:
        if run["action"] == "stopped":
            results.append(
                f"{run['name']}: still running after {run['time_limit']:g} s; stopped (a service?)"
            )
        elif run["action"] == "ran":
            results.append(f"{run['name']}: ran ({run['seconds']:.1f} s)")
        else:
            errors.append(f"{run['name']}: exited with status {run['status']}")
    return results, errors


def removed_doc(
    target: Path, removed: Sequence[tuple[str, str, str]], **extra: Any
) -> dict[str, Any]:
    return {
        "target": _path(target),
        **extra,
        "layers": [
            {"name": name, "action": action, "reason": reason} for name, action, reason in removed
        ],
    }


def emit(command: str, doc: dict[str, Any], lines: Sequence[str]) -> None:
    """The result: the JSON document on stdout with --json (the lines then go to stderr,
    unless -q), else the lines on stdout."""
    if ui.settings.json:
        ui.emit_json({"command": command, **doc})
        if ui.settings.verbosity < 0:
            return
    for line in lines:
        ui.result(line)
