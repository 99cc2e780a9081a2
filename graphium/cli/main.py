"""``graphium-run``: the command group, and the one place that maps errors to exit codes.

Exit codes (documented in README): 0 success or no changes; 1 error (invalid input, a usage
error such as a missing file or a misspelled option, failed apply); 2 changes present (``plan
--detailed-exitcode``) and nothing else; 3 a saved plan refused as stale; 4 ``--timeout`` ran out
before the stack settled; 130 interrupted. Errors go to stderr without tracebacks.

click exits 2 on usage errors, which a CI step running ``plan --detailed-exitcode`` would read as
"changes present"; every click error is therefore mapped to 1 here.
"""

from __future__ import annotations

import importlib
import sys

import click

from graphium.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_STALE
from graphium.errors import GraphiumError, StalePlanError, ValidationError

# Each command by the module that defines it, imported only when that command runs (or for
# --help): `serve` brings in the web server, `apply` the engines and SSH, `--version` nothing.
COMMANDS = {
    "validate": "graphium.cli.deploy",
    "plan": "graphium.cli.deploy",
    "apply": "graphium.cli.deploy",
    "destroy": "graphium.cli.deploy",
    "history": "graphium.cli.history",
    "rollback": "graphium.cli.history",
    "status": "graphium.cli.status",
    "tasks": "graphium.cli.status",
    "agents": "graphium.cli.status",
    "serve": "graphium.cli.control",
    "agent": "graphium.cli.control",
    "token": "graphium.cli.control",
    "ps": "graphium.cli.ops",
    "logs": "graphium.cli.ops",
    "unlock": "graphium.cli.safety",
    "store": "graphium.cli.store",
}


class LazyGroup(click.Group):
    """A command group that imports a command's module when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            command = getattr(importlib.import_module(COMMANDS[cmd_name]), cmd_name)
            assert isinstance(command, click.Command), cmd_name
            self.add_command(command)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="graphium")
def cli() -> None:
    """Deploy JSON-LD container stacks onto Docker hosts: locally, over SSH, or through agents."""


def _print_error(exc: GraphiumError) -> None:
    if isinstance(exc, ValidationError):
        click.echo(f"Error: {len(exc.problems)} problem(s) found:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
    else:
        click.echo(f"Error: {exc}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the click app and maps graphium errors to exit codes, without tracebacks."""
    try:
        cli.main(args=argv, prog_name="graphium-run", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except StalePlanError as exc:
        _print_error(exc)
        sys.exit(EXIT_STALE)
    except GraphiumError as exc:
        _print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
