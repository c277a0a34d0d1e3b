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


# --- detect ---


@cli.command("detect")
@json_option
@click.option(
    "--save-snapshot",
    "save_to",
    type=click.Path(dir_okay=False),
    help="Also write the raw inputs the probes read to FILE (for bug reports and tests).",
)
@click.option(
    "--snapshot",
    "snapshot",
    type=click.Path(dir_okay=False),
    help="Replay a saved snapshot instead of probing this machine.",
)
def detect_command(as_json: bool, save_to: str | None, snapshot: str | None) -> None:
    """Show what this machine has: CPU, memory, GPUs, board, disk, installed engines."""
    from qwenctl import hardware, render

    if save_to and snapshot:
        raise click.UsageError("--save-snapshot records a live run; it cannot be combined with --snapshot")
    source = hardware.load_snapshot(snapshot) if snapshot else hardware.LiveSource(record=bool(save_to))
    facts = hardware.detect(source)
    if save_to and isinstance(source, hardware.LiveSource):
        hardware.save_snapshot(source, save_to)
        click.echo(f"saved the raw inputs to {save_to}", err=True)
    if as_json:
        render.print_json(facts, "hardware")
    else:
        from qwenctl.render import detect as detect_view

        detect_view.show(facts, f"replayed from {snapshot}" if snapshot else None)


# --- plan ---


def _this_machine(snapshot: str | None):
    """Hardware of this machine from the detect probes, or replayed from a saved snapshot."""
    from qwenctl import hardware

    return hardware.detect(hardware.load_snapshot(snapshot) if snapshot else None)


@cli.command("plan")
@click.option("--profile", "profile", metavar="NAME|PATH", help="Plan for a shipped profile or a profile .toml instead of this machine.")
@click.option("--size", metavar="SIZE", help="Only this model size (0.5B, 1.5B, 3B, 7B, 14B, 32B, 72B).")
@click.option("--quant", metavar="QUANT", help="Only this quant (q4_k_m, q8_0, ... for llama.cpp; 4bit, 8bit, bf16 for mlx).")
@click.option("--backend", type=click.Choice(["llama.cpp", "mlx"]), help="Force the inference engine.")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=1), metavar="TOKENS", help="Context window to plan for (default 8192, capped at the model's).")
@click.option("--min-speed", type=click.FloatRange(min=0), metavar="TOK/S", help="Reject plans that may generate slower than this (default 5).")
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Plan for the machine a `detect --save-snapshot` file describes.")
@json_option
def plan_command(profile, size, quant, backend, n_ctx, min_speed, snapshot, as_json) -> None:
    """Choose the Qwen2.5 model, quant and settings this machine runs best, and say why."""
    from qwenctl.plan import Constraints, plan
    from qwenctl.profiles import load_profile

    if profile and snapshot:
        raise click.UsageError("--profile and --snapshot both describe a machine; give one")
    hardware = load_profile(profile) if profile else _this_machine(snapshot)
    result = plan(hardware, Constraints(size=size, quant=quant, backend=backend, n_ctx=n_ctx, min_tg_tps=min_speed))
    if as_json:
        from qwenctl.render import print_json

        print_json(result, "plan")
    else:
        from qwenctl.render.plan import render_plan

        render_plan(result)


@cli.command("profiles")
@json_option
def profiles_command(as_json) -> None:
    """List the hardware profiles `qwenctl plan --profile` knows."""
    from qwenctl.profiles import ProfileList, list_profiles

    profiles = list_profiles()
    if as_json:
        from qwenctl.render import print_json

        print_json(ProfileList(profiles), "profiles")
    else:
        from qwenctl.render.plan import render_profiles

        render_profiles(profiles)


# --- run ---


@cli.command()
@click.option("--size", help="Model size, e.g. 7B (default: the largest that fits and is fast enough).")
@click.option("--quant", help="Quantization, e.g. q4_k_m (default: the planner's choice).")
@click.option("--backend", help="llama.cpp or mlx (default: the planner's choice).")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=256), help="Context window in tokens.")
@click.option("--profile", help="Plan as if on this hardware profile (see `qwenctl profiles`).")
@click.option("--model", help="Skip planning: a local .gguf file or MLX folder, or REPO[:FILE] on Hugging Face.")
@click.option("-y", "--yes", is_flag=True, help="Download without asking.")
@click.option("--no-chat", is_flag=True, help="Stop after the smoke test.")
@click.option("--system", help="System prompt (default: Qwen's own).")
@click.option("-p", "--prompt", help="Answer this one prompt and exit; a prompt piped on stdin does the same.")
@click.option("--offline", is_flag=True, help="Use only what is already downloaded; never contact Hugging Face.")
@json_option
def run(size, quant, backend, n_ctx, profile, model, yes, no_chat, system, prompt, offline, as_json) -> None:
    """Plan, download, load and smoke-test the best model for this machine, then chat."""
    from qwenctl import chat, pipeline, render
    from qwenctl.render.chat import ChatUI
    from qwenctl.render.run import RunReporter

    if model and (size or quant or profile):
        raise click.UsageError("--model names the model itself; drop --size/--quant/--profile")
    one_shot = prompt is not None or not sys.stdin.isatty()
    if as_json and not (one_shot or no_chat):
        raise click.UsageError("--json needs -p PROMPT, a prompt on stdin, or --no-chat")
    ask = (lambda q: click.confirm(q, default=True, err=True)) if sys.stdin.isatty() else None
    reporter = RunReporter(ask=ask, quiet=as_json)
    request = pipeline.RunRequest(
        size=size, quant=quant, backend=backend, n_ctx=n_ctx, profile=profile, model=model,
        offline=offline, assume_yes=yes, smoke_seconds=0.0 if one_shot and not no_chat else pipeline.RunRequest.smoke_seconds,
    )  # fmt: skip
    started = pipeline.start(request, reporter)
    try:
        if no_chat:
            if as_json:
                render.print_json(started.summary(), "run")
            return
        conversation = chat.Conversation(system=system or chat.DEFAULT_SYSTEM_PROMPT)
        if one_shot:
            text = prompt if prompt is not None else sys.stdin.read()
            if not text.strip():
                raise QwenctlError("empty prompt", hint='pass -p "..." or pipe some text in', code=ExitCode.BAD_INPUT)
            ui = ChatUI()
            result = chat.ask(
                started.session,
                text,
                conversation.system,
                conversation.sampling,
                on_text=None if as_json else ui.reply_text,
                warn=reporter.warn,
            )
            if as_json:
                render.print_json(result, "run.reply")
            else:
                ui.reply_done(result.reply)
            return
        ui = ChatUI()
        ui.welcome(started.model_name, started.session.n_ctx)
        chat.Chat(started.session, ui, conversation).run()
    finally:
        started.session.close()
