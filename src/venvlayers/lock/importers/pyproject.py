"""``pyproject.toml``: the ``[project] dependencies`` list (PEP 621)."""

from __future__ import annotations

from pathlib import Path

from venvlayers.lock.importers._common import fail, read_toml


def read(path: Path) -> list[str]:
    project = read_toml(path).get("project")
    if not isinstance(project, dict):
        fail(path, "no [project] table to take dependencies from")
    if "dependencies" in project.get("dynamic", []):
        fail(path, "[project] dependencies are dynamic; list them statically to lock them")
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        fail(path, "[project] dependencies must be a list of strings")
    return list(dependencies)
