"""Test-only fault injection, so tests can kill a deploy at an exact step.

``VENVLAYERS_TEST_KILL_AT=<step>[:<install_target>]`` makes the process SIGKILL itself when
it reaches ``<step>`` (for that layer only, when one is named). Steps, in deploy order:

- ``extract``: a layer was unpacked into its partial folder;
- ``postinstall``: its postinstall.py ran, the folder is not yet in place;
- ``swap``: the old folder was moved away, the new one not yet in (this also turns off the
  atomic exchange, so the two-rename path is taken);
- ``record``: every layer is in place, the deployment record not yet written.

Unset (always, outside tests) it does nothing.
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "VENVLAYERS_TEST_KILL_AT"


def requested(step: str, install_target: str | None = None) -> bool:
    wanted = os.environ.get(KILL_AT_ENV, "")
    if not wanted:
        return False
    wanted_step, _, wanted_target = wanted.partition(":")
    if wanted_step != step:
        return False
    return not wanted_target or install_target is None or wanted_target == install_target


def die_if_requested(step: str, install_target: str | None = None) -> None:
    if requested(step, install_target):
        os.kill(os.getpid(), signal.SIGKILL)
