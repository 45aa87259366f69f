"""Build records: what a built layer was made from, so unchanged layers are not rebuilt."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from venvlayers import __version__
from venvlayers._fs import hash_bytes, read_json, write_json
from venvlayers.layout import BUILD_RECORD_SUFFIX


@dataclass(frozen=True)
class BuildRecord:
    build_name: str
    install_target: str
    input_hash: str
    tool_version: str
    python_version: str
    runtime_source: str

    @staticmethod
    def path_for(build_dir: Path, build_name: str) -> Path:
        return build_dir / f"{build_name}{BUILD_RECORD_SUFFIX}"

    def write(self, build_dir: Path) -> None:
        write_json(self.path_for(build_dir, self.build_name), asdict(self))

    @classmethod
    def read(cls, build_dir: Path, build_name: str) -> BuildRecord | None:
        path = cls.path_for(build_dir, build_name)
        try:
            return cls(**read_json(path))
        except (OSError, ValueError, TypeError):
            return None


# Bumped when what a built layer holds changes, so layers built before are built again
# (2: every layer carries its SBOM).
LAYER_FORMAT = 2


def input_hash(parts: dict[str, object]) -> str:
    """A stable hash of everything a layer build depends on."""
    text = json.dumps(
        {"tool_version": __version__, "layer_format": LAYER_FORMAT, **parts},
        sort_keys=True,
        default=str,
    )
    return hash_bytes(text.encode())
