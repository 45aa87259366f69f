"""The steps a deploy passes, told to an optional hook: how tests stop a deploy exactly there.

A hook is a plain callable given to :func:`venvlayers.deploy.deploy`; nothing on the
production path reads a test switch. It is called with the step and the layer's install
target ("" for steps that concern no single layer):

- ``store``: a layer's first new file is written in its partial folder and about to enter
  the content store (called from the unpacking thread);
- ``extract``: a layer was unpacked into its partial folder;
- ``postinstall``: its postinstall.py ran and its file record was written; the folder is
  not yet in place;
- ``swap``: a replacement is half done on the portable path (no atomic exchange): the new
  layer is in its hidden versioned folder, the layer path still leads to the old one;
- ``record``: every layer is in place, the deployment record not yet written;
- ``compile``: the record is written, byte-compiling has not finished.

The fault tests pass a hook that SIGKILLs the process at one step and prove recovery.
"""

from __future__ import annotations

from collections.abc import Callable

StepHook = Callable[[str, str], None]

STEPS = ("store", "extract", "postinstall", "swap", "record", "compile")


def no_hook(_step: str, _install_target: str) -> None:
    pass
