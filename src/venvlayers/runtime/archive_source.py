"""The ``archive`` source: one python-build-standalone archive named by ``source_path``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime._base import RuntimeCandidate, RuntimeProvider
from venvlayers.runtime.pbs_archives import (
    host_triples,
    install_archive,
    parse_archive_name,
    sidecar_sha256,
    verify_sha256,
)
from venvlayers.runtime.standalone import known_sha256


class ArchiveProvider(RuntimeProvider):
    """An ``install_only`` (or full) archive file; its name says version and platform."""

    source = "archive"

    @property
    def archive(self) -> Path:
        if not self.context.source_path:
            raise RuntimeProviderError(
                'source "archive" needs source_path: the path of a python-build-standalone archive'
            )
        return Path(self.context.source_path).expanduser()

    @property
    def description(self) -> str:
        return f"archive {self.context.source_path}"

    def candidates(
        self, implementation: str, feature_version: str | None = None
    ) -> Sequence[RuntimeCandidate]:
        archive = self.archive
        if not archive.is_file():
            raise RuntimeProviderError(f"runtime archive {archive} does not exist")
        name = parse_archive_name(archive.name)
        if name is None:
            raise RuntimeProviderError(
                f"runtime archive {archive}: cannot tell its Python version from its name; keep"
                " the python-build-standalone file name"
                " (cpython-X.Y.Z+DATE-TRIPLE-install_only_stripped.tar.gz)"
            )
        if name.triple not in host_triples():
            raise RuntimeProviderError(
                f"runtime archive {archive}: built for {name.triple}, this host needs"
                f" {' or '.join(host_triples()) or 'an unsupported platform'}"
            )
        expected = sidecar_sha256(archive) or known_sha256(archive.name)
        # The content digest is the identity: a replaced file gets a new cache entry.
        actual = verify_sha256(archive, expected, origin=str(archive))
        if name.implementation != implementation:
            return []
        return [
            RuntimeCandidate(
                implementation=name.implementation,
                version=name.version,
                origin=str(archive.resolve()),
                found_by="archive file",
                identity=actual,
                sha256=actual,
            )
        ]

    def materialize(self, candidate: RuntimeCandidate, dest: Path) -> None:
        archive = Path(candidate.origin)
        install_archive(
            archive,
            dest,
            sha256=candidate.sha256,
            implementation=candidate.implementation,
            version=candidate.version,
        )
