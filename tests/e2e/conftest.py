"""Fixtures for end-to-end tests: a copy of the example stack, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import EXAMPLE, venvlayers


@pytest.fixture(scope="session")
def example_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the example stack (with its committed locks), built once."""
    root = tmp_path_factory.mktemp("stack") / "sklearn-demo"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns("_build", "_artifacts", "_export", "_deploy")
    )
    venvlayers("lock", root, "--if-needed")
    venvlayers("build", root)
    return root
