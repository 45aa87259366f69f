"""Command line: options in, one call into a stage, the result rendered out.

The commands live in cli_stack.py (on a stack spec) and cli_target.py (on a deployment
folder); this module holds the group, and turns every way a command ends into one line
and a documented exit status.
"""

from __future__ import annotations

import errno
import sys
from typing import NoReturn

import click

from venvlayers import __version__, cli_stack, cli_target, ui
from venvlayers.cli_options import output_options
from venvlayers.errors import VenvLayersError

# Exit statuses (docs/cli.md): the app's own status for `run`, else these.
EXIT_OK = 0
EXIT_FAILURE = 1  # a failure the tool reports: bad input, refused archive, stale lock, ...
EXIT_USAGE = 2  # the command line itself: unknown option, bad value, missing argument
EXIT_INTERRUPTED = 130

_EPILOG = """\b
SPEC is a venvstacks.toml or its folder (default: ./venvstacks.toml).
-v, -q, --debug, --json and --no-progress work before or after the command.
Exit status: 0 ok; 1 a failure venvlayers reports; 2 a usage error;
130 interrupted; `run` passes the app's status through, 125 when it cannot
start the app. See docs/cli.md.
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Lock, build, publish and deploy layered Python environments defined by a"
    " venvstacks.toml stack specification.",
    epilog=_EPILOG,
)
@click.version_option(__version__, "--version", prog_name="venvlayers")
@output_options
def cli() -> None:
    pass


for _command in (*cli_stack.COMMANDS, *cli_target.COMMANDS):
    cli.add_command(_command)


def main() -> NoReturn:
    """Console-script entry point: one error line and a documented status for any failure."""
    ui.reconfigure()
    try:
        cli.main(args=sys.argv[1:], prog_name="venvlayers", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        ui.error("interrupted; the previous good state is left in place")
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as exc:
        ui.result(exc.format_message())
        sys.exit(EXIT_OK)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "venvlayers"
        ui.error(f"{exc.format_message().rstrip('.')} (see `{command} --help`)")
        # `run` keeps the statuses below 125 for the app: its own failures are 125.
        run = exc.ctx is not None and exc.ctx.command is cli_target.run
        sys.exit(cli_target.RUN_CANNOT_START if run else EXIT_USAGE)
    except click.ClickException as exc:
        ui.error(exc.format_message())
        sys.exit(EXIT_FAILURE)
    except VenvLayersError as exc:
        if ui.settings.tracebacks:
            ui.print_exception()
        ui.error(str(exc))
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        ui.error("interrupted; the previous good state is left in place")
        sys.exit(EXIT_INTERRUPTED)
    except OSError as exc:
        # The last line of defence for what the stages do not word themselves: the file
        # system refused (read-only, full, permissions). Every write is atomic, so the
        # previous state is still in place.
        if ui.settings.tracebacks:
            ui.print_exception()
        ui.error(os_error_line(exc))
        sys.exit(EXIT_FAILURE)
    sys.exit(EXIT_OK)


_OS_ERROR_HINTS = {
    errno.EROFS: "the file system is read-only; use a writable folder",
    errno.EACCES: "permission denied; check the folder's owner and mode",
    errno.EPERM: "operation not permitted; check the folder's owner and mode",
    errno.ENOSPC: "no space left on the device; free some space and run again",
    errno.EDQUOT: "disk quota exceeded; free some space and run again",
    errno.ENAMETOOLONG: "a path is too long; use a shorter folder",
}


def os_error_line(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "venvlayers"
    hint = _OS_ERROR_HINTS.get(exc.errno or 0, exc.strerror or str(exc))
    return f"{where}: {hint}; the previous state is left in place"


from venvlayers.cli_oci import register  # noqa: E402  (push, image: docs/registries.md)

register(cli)

from venvlayers.cli_supply import register as register_supply  # noqa: E402  (docs/supply-chain.md)

register_supply(cli)
