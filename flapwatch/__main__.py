"""The `flapwatch` console command (DESIGN.md §5), also `python -m flapwatch`: the app built
by create_app, running the command asked for (the commands are flapwatch.cli's)."""

from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from flapwatch import create_app
from flapwatch.config import ConfigurationError


def main() -> None:
    try:
        code = FlaskGroup(
            name="flapwatch",
            create_app=create_app,
            add_default_commands=False,
            add_version_option=False,
            help="flapwatch: postoperative free-flap monitoring.",
        )(prog_name="flapwatch", standalone_mode=False)
    except ConfigurationError as refused:
        click.echo(f"flapwatch: refusing to start: {refused}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as problem:
        problem.show()
        sys.exit(problem.exit_code)
    # Outside standalone mode, click hands back a command's exit code rather than exiting.
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
