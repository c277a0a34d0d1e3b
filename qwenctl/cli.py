"""The command line: parse flags, call one library function, render the result. No logic."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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


# --- bench ---
@cli.command()
@click.option("--model", "model_path", type=click.Path(exists=True, path_type=Path),
              help="A GGUF file (llama.cpp) or an MLX model folder.")
@click.option("--backend", type=click.Choice(["llama.cpp", "mlx"]), help="Default: mlx for a folder, else llama.cpp.")
@click.option("-p", "--n-prompt", default=512, show_default=True, help="Prompt tokens per pp run.")
@click.option("-n", "--n-gen", default=128, show_default=True, help="Tokens decoded per tg run.")
@click.option("-r", "--repetitions", default=3, show_default=True, help="Timed runs after one warm-up.")
@click.option("-ngl", "--gpu-layers", "n_gpu_layers", default=-1, show_default=True, help="Layers on the GPU (-1: all).")
@click.option("-t", "--threads", type=int, help="CPU threads (default: physical cores).")
@click.option("-b", "--batch", "n_batch", default=512, show_default=True)
@click.option("--ctx", "n_ctx", type=int, help="Context size (default: n-prompt + n-gen, as llama-bench).")
@click.option("-fa", "--flash-attn/--no-flash-attn", default=False, show_default=True)
@click.option("--kv-cache-type", type=click.Choice(["f16", "q8_0", "q4_0"]), default="f16", show_default=True)
@click.option("--bandwidth", help="Memory bandwidth for the roofline (e.g. 3.35TB/s); default: detected.")
@click.option("--no-chat", is_flag=True, help="Skip the end-to-end chat runs (with sampling).")
@click.option("--no-save", is_flag=True, help="Do not append the result to the history.")
@click.option("--history", is_flag=True, help="Show earlier runs on this machine instead of measuring.")
@json_option
def bench(model_path, backend, n_prompt, n_gen, repetitions, n_gpu_layers, threads, n_batch, n_ctx, flash_attn,
          kv_cache_type, bandwidth, no_chat, no_save, history, as_json) -> None:
    """Measure prompt processing, decoding, chat latency and memory of a model (llama-bench's method)."""
    from qwenctl import bench as bench_mod
    from qwenctl import render
    from qwenctl.backends import LoadOptions
    from qwenctl.render import bench as show

    if history:
        past = bench_mod.read_history()
        return render.print_json(past, "bench-history") if as_json else show.show_history(past)
    if model_path is None:
        raise QwenctlError("bench needs a model", hint="pass --model PATH (a .gguf file or an MLX folder)",
                           code=ExitCode.USAGE)
    backend = backend or ("mlx" if model_path.is_dir() else "llama.cpp")
    bw = bench_mod.parse_bandwidth(bandwidth) if bandwidth else _detected_bandwidth(n_gpu_layers != 0)
    options = LoadOptions(n_ctx=n_ctx or n_prompt + n_gen, n_gpu_layers=n_gpu_layers, n_threads=threads,
                          n_batch=n_batch, flash_attn=flash_attn, kv_cache_type=kv_cache_type)
    with show.progress() as tick:
        result = bench_mod.bench(model_path, backend=backend, options=options, n_prompt=n_prompt, n_gen=n_gen,
                                 repetitions=repetitions, chat=not no_chat, bandwidth=bw, progress=tick)
    if not no_save:
        bench_mod.append_history(result)
    render.print_json(result, "bench") if as_json else show.show_result(result)


def _detected_bandwidth(on_gpu: bool):
    """Bandwidth from `detect`, or None (the roofline is then left out, with a hint)."""
    from qwenctl.bench import bandwidth_from_hardware

    try:
        from qwenctl.hardware import detect
    except ImportError:
        return None
    return bandwidth_from_hardware(detect(), on_gpu)
