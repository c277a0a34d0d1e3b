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


# --- pull / models / rm ---


@cli.command()
@click.argument("spec", metavar="REPO[:FILE]")
@click.option("--revision", help="Branch, tag or commit (default: main).")
@click.option("--offline", is_flag=True, help="Use only the cache; fail clearly if the files are not there.")
@json_option
def pull(spec: str, revision: str | None, offline: bool, as_json: bool) -> None:
    """Download a model into the Hugging Face cache, resuming and verifying it.

    REPO alone takes the whole repo (an MLX folder); REPO:FILE one GGUF (every part of a
    split GGUF); FILE may also be a quant, e.g. Qwen/Qwen2.5-7B-Instruct-GGUF:q4_k_m.
    """
    from qwenctl import fetch, render
    from qwenctl.render import models as view

    repo, name = fetch.parse_spec(spec)
    with view.PullBar(spec) as bar:
        result = fetch.pull(repo, [name] if name else None, revision=revision, offline=offline, progress=bar)
    if as_json:
        render.print_json(result, "pull")
    else:
        view.pulled(result)


@cli.command()
@click.option("--all", "all_repos", is_flag=True, help="List every model repo in the cache, not only Qwen2.5.")
@json_option
def models(all_repos: bool, as_json: bool) -> None:
    """List the Qwen2.5 models in the Hugging Face cache: size, quant, verified or not."""
    from qwenctl import fetch, render
    from qwenctl.render import models as view

    result = fetch.list_models(all_repos=all_repos)
    if as_json:
        render.print_json(result, "models")
    else:
        view.model_list(result)


@cli.command()
@click.argument("spec", metavar="REPO[:FILE]")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
def rm(spec: str, yes: bool, dry_run: bool) -> None:
    """Remove a model from the cache: REPO entirely, or REPO:FILE (all parts of a split GGUF)."""
    from qwenctl import fetch
    from qwenctl.render import models as view

    plan = fetch.remove(spec, dry_run=True)
    if dry_run:
        return view.removed(plan)
    if not yes:
        view.removed(plan)
        click.confirm("remove?", abort=True, err=True)
    view.removed(fetch.remove(spec))
