"""The ``standalone`` source: python-build-standalone archives.

Builds are resolved through the release index that ``pbs-installer`` ships, then taken from
a folder of archives (air-gapped hosts), a mirror URL, or the project's release downloads.
"""

from __future__ import annotations

import functools
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from venvlayers.environment import PBS_MIRROR
from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime._base import ProviderContext, RuntimeCandidate, RuntimeProvider
from venvlayers.runtime.pbs_archives import (
    ArchiveName,
    host_triples,
    install_archive,
    parse_archive_name,
    sidecar_sha256,
    verify_sha256,
)

MIRROR_ENV = PBS_MIRROR


class DownloadUnreachable(RuntimeProviderError):
    """The download host did not answer at all (no network, DNS, refused, timeout).

    Unlike a missing file or a bad checksum, this says nothing about the runtime itself:
    ``auto`` moves on to the local source without alarming anyone.
    """

    def __init__(self, message: str, *, host: str, reason: str) -> None:
        super().__init__(message)
        self.host = host
        self.reason = reason


DOWNLOAD_TIMEOUT = 60.0
_CONFIGURED = "configured"
_OFFLINE_HINT = (
    f"to build without downloading, set {MIRROR_ENV} to a mirror URL or a folder of"
    " python-build-standalone archives, or use the local source"
    " (--runtime-source local or VENVLAYERS_RUNTIME_SOURCE=local)"
)


@functools.lru_cache(maxsize=1)
def release_index() -> tuple[tuple[ArchiveName, str, str | None], ...]:
    """``(name, url, sha256)`` of every install_only build for this host, from pbs-installer."""
    try:
        text = (resources.files("pbs_installer") / "versions.json").read_text(encoding="utf-8")
        payload = json.loads(text)
    except (ModuleNotFoundError, FileNotFoundError, ValueError):
        return ()
    triples = host_triples()
    found = []
    for release in payload:
        for item in release.get("files", ()):
            name = parse_archive_name(item.get("filename", ""))
            if name is None or name.triple not in triples or not item.get("install_only"):
                continue
            if release["python_version"].get("freethreaded"):
                continue
            found.append((name, str(item["url"]), item.get("sha256")))
    return tuple(found)


def known_sha256(filename: str) -> str | None:
    """The published digest of an archive, when the release index knows the file."""
    return next((sha for name, _url, sha in release_index() if name.filename == filename), None)


def fetch_url(url: str, dest: Path, *, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Download ``url`` to ``dest`` (the only network access of the runtime providers)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, dest.open("wb") as out:
        while block := response.read(1 << 20):
            out.write(block)


def configured_mirror(context: ProviderContext) -> str | None:
    return context.source_path or context.mirror or None


def _best_per_version(
    names: Sequence[tuple[ArchiveName, str, str | None]],
) -> list[tuple[ArchiveName, str, str | None]]:
    """One archive per (implementation, version): the stripped install_only one if offered."""
    chosen: dict[tuple[str, str], tuple[ArchiveName, str, str | None]] = {}
    for entry in names:
        key = (entry[0].implementation, entry[0].version)
        if key not in chosen or entry[0].preference < chosen[key][0].preference:
            chosen[key] = entry
    return list(chosen.values())


class StandaloneProvider(RuntimeProvider):
    """python-build-standalone builds: from a mirror (folder or URL) when one is configured,
    else downloaded from the release URLs of the index."""

    source = "standalone"

    def __init__(self, context: ProviderContext, mirror: str | None = _CONFIGURED) -> None:
        super().__init__(context)
        self.mirror = configured_mirror(context) if mirror == _CONFIGURED else mirror
        self.mirror_folder = _as_folder(self.mirror)
        if self.mirror_folder is not None and self.mirror_folder.is_file():
            raise RuntimeProviderError(
                f'{self.mirror} is one archive file: use source = "archive" for it'
            )

    @property
    def description(self) -> str:
        if self.mirror_folder is not None:
            return f"archive folder {self.mirror_folder}"
        if self.mirror:
            return f"mirror {self.mirror}"
        return "python-build-standalone releases"

    def candidates(
        self, implementation: str, feature_version: str | None = None
    ) -> Sequence[RuntimeCandidate]:
        if self.mirror_folder is not None:
            entries = self._folder_entries()
            found_by = "archive folder"
        else:
            entries = list(release_index())
            found_by = "mirror" if self.mirror else "download"
        return [
            RuntimeCandidate(
                implementation=name.implementation,
                version=name.version,
                origin=location,
                found_by=found_by,
                identity=name.filename,
                sha256=sha,
            )
            for name, location, sha in _best_per_version(entries)
            if name.implementation == implementation
        ]

    def _folder_entries(self) -> list[tuple[ArchiveName, str, str | None]]:
        assert self.mirror_folder is not None
        if not self.mirror_folder.is_dir():
            raise RuntimeProviderError(f"archive folder {self.mirror_folder} does not exist")
        entries = []
        triples = host_triples()
        for path in sorted(self.mirror_folder.iterdir()):
            name = parse_archive_name(path.name)
            if name is not None and name.triple in triples and path.is_file():
                sha = sidecar_sha256(path) or known_sha256(path.name)
                entries.append((name, str(path), sha))
        return entries

    def materialize(self, candidate: RuntimeCandidate, dest: Path) -> None:
        if self.mirror_folder is not None:
            archive = Path(candidate.origin)
        else:
            url = candidate.origin
            if self.mirror:
                url = f"{self.mirror.rstrip('/')}/{urllib.parse.quote(candidate.identity)}"
            archive = self.download(url, candidate.identity, candidate.sha256)
        if candidate.sha256 is None:
            self.context.report(f"{archive.name}: no published sha256 known; not verified")
        install_archive(
            archive,
            dest,
            sha256=candidate.sha256,
            implementation=candidate.implementation,
            version=candidate.version,
        )

    def download(self, url: str, filename: str, sha256: str | None) -> Path:
        """Fetch ``url`` into the downloads cache (reusing a verified earlier download)."""
        downloads = self.context.downloads_dir
        target = downloads / filename
        if target.is_file():
            try:
                verify_sha256(target, sha256, origin=str(target))
                self.context.report(f"using the archive downloaded earlier: {target}")
                return target
            except RuntimeProviderError:
                target.unlink()
        downloads.mkdir(parents=True, exist_ok=True)
        partial = downloads / f".{filename}.{os.getpid()}.partial"
        self.context.report(f"downloading {url}")
        try:
            fetch_url(url, partial)
            verify_sha256(partial, sha256, origin=url)
            os.replace(partial, target)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            message = f"download of {url} failed ({reason}); {_OFFLINE_HINT}"
            if _unreachable(exc):
                host = urllib.parse.urlparse(url).hostname or url
                raise DownloadUnreachable(message, host=host, reason=str(reason)) from exc
            raise RuntimeProviderError(message) from exc
        finally:
            partial.unlink(missing_ok=True)
        return target


def _unreachable(exc: BaseException) -> bool:
    """No answer from the host, as opposed to an answer we did not like (HTTP 404...)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))


def _as_folder(mirror: str | None) -> Path | None:
    """A mirror given as a path or ``file://`` URL is a folder of archives."""
    if not mirror:
        return None
    parsed = urllib.parse.urlparse(mirror)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    return Path(mirror).expanduser()
