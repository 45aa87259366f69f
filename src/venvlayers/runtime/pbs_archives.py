"""python-build-standalone archives: names, checksums, safe extraction, layout detection."""

from __future__ import annotations

import contextlib
import platform
import re
import shutil
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from venvlayers._fs import sha256_file
from venvlayers.errors import RuntimeProviderError

# cpython-3.11.7+20240107-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz
_ARCHIVE_NAME = re.compile(
    r"^(?P<impl>cpython|pypy)-(?P<version>\d+\.\d+\.\d+)(?:\+(?P<release>\d+))?"
    r"-(?P<triple>[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+(?:-[a-z0-9_]+)?)"
    r"-(?P<flavour>install_only_stripped|install_only|[a-z0-9_+]+-full)"
    r"\.(?P<ext>tar\.gz|tar\.zst|tar\.zstd)$"
)
# Stripped builds are smaller and equally complete at run time, so they win.
FLAVOUR_PREFERENCE = ("install_only_stripped", "install_only")


@dataclass(frozen=True)
class ArchiveName:
    """What a python-build-standalone file name says about its content."""

    filename: str
    implementation: str
    version: str
    release: str
    triple: str
    flavour: str

    @property
    def preference(self) -> int:
        """Lower is better: stripped install_only, then install_only, then full builds."""
        if self.flavour in FLAVOUR_PREFERENCE:
            return FLAVOUR_PREFERENCE.index(self.flavour)
        return len(FLAVOUR_PREFERENCE)


def parse_archive_name(filename: str) -> ArchiveName | None:
    match = _ARCHIVE_NAME.match(filename)
    if not match:
        return None
    return ArchiveName(
        filename=filename,
        implementation=match["impl"],
        version=match["version"],
        release=match["release"] or "",
        triple=match["triple"],
        flavour=match["flavour"],
    )


def host_triples() -> tuple[str, ...]:
    """Target triples whose builds run on this host (as python-build-standalone names them)."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform.startswith("linux"):
        return (f"{arch}-unknown-linux-gnu",)
    if sys.platform == "darwin":
        return (f"{arch}-apple-darwin",)
    if sys.platform == "win32":
        return (f"{arch}-pc-windows-msvc", f"{arch}-pc-windows-msvc-shared")
    return ()


def sidecar_sha256(archive: Path) -> str | None:
    """The digest from ``<archive>.sha256`` or a ``SHA256SUMS`` file beside the archive."""
    sidecar = archive.with_name(archive.name + ".sha256")
    if sidecar.is_file():
        words = sidecar.read_text(encoding="utf-8").split()
        return words[0].lower() if words else None
    sums = archive.with_name("SHA256SUMS")
    if sums.is_file():
        for line in sums.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if len(words) == 2 and words[1].lstrip("*") == archive.name:
                return words[0].lower()
    return None


def verify_sha256(archive: Path, expected: str | None, *, origin: str) -> str:
    """Check ``archive`` against ``expected`` (when known); return its actual digest."""
    actual = sha256_file(archive)
    if expected is not None and actual != expected.lower():
        raise RuntimeProviderError(
            f"{origin}: sha256 mismatch (expected {expected.lower()}, got {actual});"
            " the archive is corrupt or not the published file: delete it and fetch it again"
        )
    return actual


@contextlib.contextmanager
def _open_tar(archive: Path) -> Iterator[tarfile.TarFile]:
    name = archive.name
    if name.endswith((".tar.zst", ".tar.zstd")):
        import zstandard

        with archive.open("rb") as raw:
            stream: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                yield tar
    else:
        with tarfile.open(archive, mode="r:*") as tar:
            yield tar


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into the empty folder ``dest`` with tarfile's ``data`` filter.

    The filter refuses members that would land outside ``dest`` (``../``, absolute paths,
    links escaping the folder), device files and setuid bits: an archive from a mirror is
    treated as untrusted input.
    """
    if not hasattr(tarfile, "data_filter"):
        raise RuntimeProviderError(
            f"{archive}: safe extraction needs Python 3.11.4 or newer for venvlayers itself"
        )
    try:
        with _open_tar(archive) as tar:
            tar.extractall(dest, filter="data")
    except tarfile.FilterError as exc:
        raise RuntimeProviderError(f"{archive}: refused unsafe archive member: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RuntimeProviderError(f"{archive}: cannot unpack: {exc}") from exc


def runtime_root_in(unpacked: Path, *, origin: str) -> Path:
    """Where the runtime (``bin/``, ``lib/``...) sits in an unpacked standalone archive.

    ``install_only`` archives hold ``python/`` itself; full builds hold ``python/install/``.
    """
    top = unpacked / "python"
    for root in (top, top / "install"):
        if find_interpreter(root) is not None:
            return root
    entries = sorted(p.name for p in unpacked.iterdir())
    raise RuntimeProviderError(
        f"{origin}: archive layout not recognised: expected python/bin/python3.X (install_only) or"
        f" python/install/bin/python3.X (full build); top-level entries: {', '.join(entries)}"
    )


def find_interpreter(root: Path) -> str | None:
    """The interpreter of a runtime folder relative to it, e.g. ``bin/python3.11``."""
    if (root / "python.exe").is_file():
        return "python.exe"
    bin_dir = root / "bin"
    if not bin_dir.is_dir():
        return None
    versioned = sorted(
        p.name for p in bin_dir.iterdir() if re.fullmatch(r"(python|pypy)3\.\d+", p.name)
    )
    if versioned:
        return f"bin/{versioned[-1]}"
    for name in ("python3", "pypy3", "python"):
        if (bin_dir / name).exists():
            return f"bin/{name}"
    return None


def unpack_runtime(archive: Path, dest: Path) -> None:
    """Unpack a standalone archive and move its runtime tree into the empty folder ``dest``."""
    scratch = dest.parent / f".{dest.name}.unpack"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        extract_archive(archive, scratch)
        root = runtime_root_in(scratch, origin=str(archive))
        dest.rmdir()
        root.rename(dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_unpacked(root: Path, *, implementation: str, version: str, origin: str) -> None:
    """Run the unpacked interpreter: it must start and be the version its name promised."""
    from venvlayers.runtime.probe import probe

    python = find_interpreter(root)
    if python is None:
        raise RuntimeProviderError(f"{origin}: no interpreter in the unpacked runtime")
    facts = probe(root / python, what=f"runtime from {origin}")
    if (facts.implementation, facts.version) != (implementation, version):
        raise RuntimeProviderError(
            f"{origin}: the interpreter is {facts.implementation}@{facts.version},"
            f" but the archive name says {implementation}@{version}"
        )


def install_archive(
    archive: Path, dest: Path, *, sha256: str | None, implementation: str, version: str
) -> None:
    """Check an install_only archive, unpack it into ``dest`` and prove the result runs."""
    verify_sha256(archive, sha256, origin=str(archive))
    unpack_runtime(archive, dest)
    check_unpacked(dest, implementation=implementation, version=version, origin=str(archive))
