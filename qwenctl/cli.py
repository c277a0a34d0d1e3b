"""The command line: parse flags, call one library function, render the result. No logic."""

from __future__ import annotations

import logging
import sys

import click

from qwenctl import __version__
from qwenctl.errors import ExitCode, QwenctlError


class QwenctlGroup(click.Group):
    """Turns QwenctlError (and Ctrl-C) into one line on stderr and a distinct exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except QwenctlError as e:
            from qwenctl import render

            render.error(e.one_line())
            sys.exit(int(e.code))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")


@click.group(cls=QwenctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qwenctl")
@click.option("-v", "--verbose", count=True, help="Log what qwenctl does (-vv for debug) on stderr.")
def cli(verbose: int) -> None:
    """Run the best Qwen 2.5 model this machine can: detect, plan, pull, bench, run."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    cli(prog_name="qwenctl")
