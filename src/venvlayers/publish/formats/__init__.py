"""Archive formats by name. A new format is one module and one line in :data:`FORMATS`."""

from __future__ import annotations

from venvlayers.publish.formats.base import ArchiveFormat, ArchiveWriter
from venvlayers.publish.formats.tar_gz import TarGz
from venvlayers.publish.formats.tar_xz import TarXz
from venvlayers.publish.formats.tar_zst import TarZst
from venvlayers.publish.formats.zip import Zip

DEFAULT_FORMAT = "tar.zst"

FORMATS: dict[str, ArchiveFormat] = {
    fmt.name: fmt
    for fmt in (
        TarZst(),
        TarXz(),
        TarGz(),
        Zip(),
    )
}

__all__ = ["DEFAULT_FORMAT", "FORMATS", "ArchiveFormat", "ArchiveWriter"]
