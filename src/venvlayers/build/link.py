"""Link a layered venv to the layers beneath it.

The layer's site-packages gets ``_venvlayers_path.pth`` (one ``import`` line) and a small
``_venvlayers_path.py`` with the lower layers' site-packages baked in relative to the layer
folder. At start-up it runs ``site.addsitedir`` for each of them in ``sys.path`` order, so their
own ``.pth`` files work too. A ``.pth`` file rather than ``sitecustomize.py`` leaves a
``sitecustomize.py`` shipped by a package alone.

The template lives in the injected ``postinstall.py``, which rewrites these files from the
metadata's ``pylib_dirs`` on deployment, so build and target share one template.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path

from venvlayers._injected import postinstall
from venvlayers.errors import BuildError

LINK_PTH = postinstall.LINK_PTH
LINK_MODULE = postinstall.LINK_MODULE


def write_layer_links(layer_dir: Path, *, site_dir: str, lower_site_dirs: Sequence[str]) -> None:
    """Make the venv at ``layer_dir`` see ``lower_site_dirs`` after its own site-packages.

    ``site_dir`` and ``lower_site_dirs`` are relative to ``layer_dir`` with ``/`` separators;
    the lower ones are in ``sys.path`` order (frameworks in C3 order, runtime last) and must
    lead to sibling layers (``../<layer>/...``), so the links survive moving the whole folder.
    """
    for relative in lower_site_dirs:
        parts = posixpath.normpath(relative).split("/")
        if posixpath.isabs(relative) or len(parts) < 2 or parts[0] != ".." or ".." in parts[1:]:
            raise BuildError(
                f"{layer_dir.name}: lower site-packages {relative!r} must be a relative path "
                "to a sibling layer (../<layer>/...)"
            )
    postinstall.write_link_files(str(layer_dir), site_dir, lower_site_dirs)
