"""The command line: parse flags, call one library function, render the result. No logic."""

from __future__ import annotations

import dataclasses
import io
import logging
import sys

import click

from qwenctl import __version__
from qwenctl.backends import KV_CACHE_TYPES


class QwenctlGroup(click.Group):
    """Every command ends in one line on stderr and a distinct exit code (qwenctl/guard.py)."""

    def invoke(self, ctx: click.Context):
        from qwenctl.guard import guarded

        return guarded(lambda: super(QwenctlGroup, self).invoke(ctx))


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
gpus_option = click.option("--gpus", metavar="LIST", help="Use only these GPUs, numbered as `qwenctl detect` lists them (e.g. 0,1).")
workers_option = click.option(
    "--workers", metavar="HOST:PORT,...", callback=lambda ctx, param, v: tuple(e.strip() for e in v.split(",") if e.strip()) if v else (),
    help="Spread the model over these `qwenctl worker` machines too (llama.cpp's RPC backend).")


def _gpus(spec: str | None, profile: str | None) -> None:
    """--gpus on this machine: CUDA sees only those GPUs from here on (a profile is narrowed by the planner)."""
    if spec and not profile:
        from qwenctl.hardware.cuda_visible import use_only

        use_only(spec)


@click.group(cls=QwenctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qwenctl")
@click.option("-v", "--verbose", count=True, help="Log what qwenctl does (-vv for debug) on stderr.")
def cli(verbose: int) -> None:
    """Run the best Qwen 2.5 model this machine can: detect, plan, pull, bench, run."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    for stream in (sys.stdout, sys.stderr):
        # a console or file in a legacy code page (Windows' cp1252, an ASCII locale) cannot encode a plan's bars or a
        # reply's characters: they print as "?" rather than end the command in a UnicodeEncodeError
        if isinstance(stream, io.TextIOWrapper) and not stream.encoding.lower().replace("-", "").startswith("utf"):
            stream.reconfigure(errors="replace")
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
    type=click.Path(),  # a folder is refused by the loader, in one line
    help="Replay a saved snapshot instead of probing this machine.",
)
@click.option("--measure", is_flag=True, help="Measure host memory bandwidth now (under a second) and remember it.")
def detect_command(as_json: bool, save_to: str | None, snapshot: str | None, measure: bool) -> None:
    """Show what this machine has: CPU, memory, GPUs, board, disk, installed engines."""
    from qwenctl import hardware, render

    if save_to and snapshot:
        raise click.UsageError("--save-snapshot records a live run; it cannot be combined with --snapshot")
    if measure and snapshot:
        raise click.UsageError("--measure measures this machine; it cannot be combined with --snapshot")
    source = hardware.load_snapshot(snapshot) if snapshot else hardware.LiveSource(record=bool(save_to))
    facts = hardware.detect(source)
    if measure:
        m, not_remembered = hardware.measure_bandwidth(facts)
        click.echo(f"measured {m.bytes_per_s / 1e9:.1f} GB/s host memory read bandwidth "
                   f"({m.threads} threads, {m.buffer_bytes >> 20} MiB, {m.seconds:.2f} s)", err=True)
        if not_remembered:
            click.echo(f"warning: not remembered for later runs: {not_remembered}", err=True)
        source = hardware.LiveSource(record=bool(save_to))
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
    import dataclasses

    from qwenctl import hardware

    if not snapshot:
        return hardware.detect()
    return dataclasses.replace(hardware.detect(hardware.load_snapshot(snapshot)), name=f"the machine in {snapshot}")


@cli.command("plan")
@click.option("--profile", "profile", metavar="NAME|PATH", help="Plan for a shipped profile or a profile .toml instead of this machine.")
@click.option("--size", metavar="SIZE", help="Only this model size (0.5B, 1.5B, 3B, 7B, 14B, 32B, 72B).")
@click.option("--quant", metavar="QUANT", help="Only this quant (q4_k_m, q8_0, ... for llama.cpp; 4bit, 8bit, bf16 for mlx).")
@click.option("--backend", type=click.Choice(["llama.cpp", "mlx"]), help="Force the inference engine.")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=256), metavar="TOKENS", help="Context window to plan for (default 8192, capped at the model's).")
@click.option("--min-speed", type=click.FloatRange(min=0), metavar="TOK/S", help="Reject plans that may generate slower than this (default 5).")
@click.option("--snapshot", type=click.Path(), help="Plan for the machine a `detect --save-snapshot` file describes.")
@click.option("--explain-speed", is_flag=True, help="Also print the speed model's terms for the chosen plan.")
@gpus_option
@workers_option
@json_option
def plan_command(profile, size, quant, backend, n_ctx, min_speed, snapshot, explain_speed, gpus, workers, as_json) -> None:
    """Choose the Qwen2.5 model, quant and settings this machine runs best, and say why."""
    from qwenctl.pipeline import plan_workers
    from qwenctl.plan import Constraints, plan
    from qwenctl.profiles import load_profile

    if profile and snapshot:
        raise click.UsageError("--profile and --snapshot both describe a machine; give one")
    _gpus(gpus, profile or snapshot)
    constraints = Constraints(size=size, quant=quant, backend=backend, n_ctx=n_ctx, min_tg_tps=min_speed)
    on_workers = plan_workers(workers, profile)
    if profile or snapshot:
        hardware = load_profile(profile) if profile else _this_machine(snapshot)
        if gpus:
            from qwenctl.hardware.cuda_visible import select_gpus

            hardware = select_gpus(hardware, gpus)
        result = plan(hardware, constraints, on_workers)
    else:  # this machine: measured where its plan would rest on an assumed host bandwidth
        from qwenctl.pipeline import plan_here

        _, result = plan_here(lambda hw: plan(hw, constraints, on_workers), lambda message: click.echo(message, err=True))
    if as_json:
        from qwenctl.render import print_json

        print_json(result, "plan")
    else:
        from qwenctl.render.plan import render_plan, render_speed_terms

        render_plan(result)
        if explain_speed:
            render_speed_terms(result)


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


# --- run / serve: the options that choose a model ---

MODEL_HELP = ("MODEL: a size (7b), size:quant (7b:q8_0), an Ollama-style tag (qwen2.5:7b, qwen2.5:7b-instruct-q4_k_m), "
              "REPO[:FILE|:QUANT] on Hugging Face, a path, or ollama:NAME[:TAG] from Ollama's store.")


def _complete_model(ctx, param, incomplete: str):
    """Tab completion for MODEL: the catalog's sizes and what the cache holds, by short name."""
    from click.shell_completion import CompletionItem

    from qwenctl.catalog import load_catalog

    names = [m.size.lower() for m in load_catalog().models]
    try:
        from qwenctl.fetch import list_models

        names += [m.short_name or m.spec for m in list_models().models]
    except Exception:  # noqa: BLE001 - completion never fails the shell
        pass
    return [CompletionItem(n) for n in dict.fromkeys(names) if n.startswith(incomplete)]


model_argument = click.argument("model_arg", metavar="[MODEL]", required=False, shell_complete=_complete_model)

_MODEL_CHOICE = (
    model_argument,
    click.option("--size", help="Model size, e.g. 7B (default: the largest that fits and is fast enough)."),
    click.option("--quant", help="Quantization, e.g. q4_k_m (default: the planner's choice)."),
    click.option("--backend", type=click.Choice(["llama.cpp", "mlx"]), help="Engine (default: the planner's choice)."),
    click.option("--ctx", "n_ctx", type=click.IntRange(min=256),
                 help="Context window in tokens (default: the plan's; 4096 with --model PATH)."),
    click.option("--profile", help="Plan as if on this hardware profile (see `qwenctl profiles`)."),
    click.option("--model", metavar="MODEL", help="The same as the MODEL argument."),
    gpus_option,
    workers_option,
)


def model_choice_options(command):
    """run, serve and bench choose their model alike: MODEL (resolve.py), or the plan's constraints."""
    for option in reversed(_MODEL_CHOICE):
        command = option(command)
    return command


def _model(model_arg, model_opt, size, quant, profile) -> str | None:
    """MODEL, given once (as the argument or --model), or the config file's `model` when nothing chooses one."""
    if model_arg and model_opt and model_arg != model_opt:
        raise click.UsageError("give MODEL once: as the argument or as --model")
    model = model_arg or model_opt
    if model and (size or quant):
        raise click.UsageError("MODEL names the model itself; drop --size/--quant (or write them in it: 7b:q8_0)")
    if model is None and not (size or quant or profile):
        from qwenctl.config import load_config

        model = load_config().model
    if model and profile:
        from qwenctl.resolve import parse_model

        if not parse_model(model).planned:
            raise click.UsageError(f"{model} is a file, not a plan: --profile plans a size (7b) for another machine")
    return model


def _run_request(size, quant, backend, n_ctx, profile, model, *, offline: bool, yes: bool, smoke_seconds: float,
                 model_opt: str | None = None, smoke: bool | None = None, gpus: str | None = None,
                 workers: tuple[str, ...] = ()):
    from qwenctl import pipeline

    model = _model(model, model_opt, size, quant, profile)
    _gpus(gpus, profile)
    return pipeline.RunRequest(size=size, quant=quant, backend=backend, n_ctx=n_ctx, profile=profile, model=model,
                               offline=offline, assume_yes=yes, smoke_seconds=smoke_seconds, smoke=smoke,
                               gpus=gpus if profile else None, workers=workers)


def _ask_on_terminal():
    """A yes/no question on the terminal, or None when no one can answer (stdin is not a TTY)."""
    return (lambda q: click.confirm(q, default=True, err=True)) if sys.stdin.isatty() else None


# --- serve ---


@cli.command()
@model_choice_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; anything but loopback wants --api-key.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), envvar="QWENCTL_PORT", show_envvar=True,
              help="Port to listen on (0: any free port).")
@click.option("--api-key", envvar="QWENCTL_API_KEY", show_envvar=True, help="Require Authorization: Bearer KEY on every request.")
@click.option("--parallel", type=click.IntRange(min=1), help="Requests generated at once, in one batch (more wait in a queue).")
@click.option("--drain", "drain_s", default=60.0, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
              help="After Ctrl-C/SIGTERM, let requests finish this long, then abandon them (exit 12).")
@click.option("-y", "--yes", is_flag=True, help="Download without asking.")
@click.option("--offline", is_flag=True, help="Use only what is already downloaded; never contact Hugging Face.")
@json_option
def serve(model_arg, size, quant, backend, n_ctx, profile, model, gpus, workers, host, port, api_key, parallel, drain_s, yes,
          offline, as_json) -> None:
    """Serve MODEL (default: the planned model) behind an OpenAI-compatible API.

    MODEL: a size (7b), size:quant (7b:q8_0), qwen2.5:7b, REPO[:FILE|:QUANT], a path, or ollama:NAME[:TAG].
    """
    from qwenctl import serve as serving
    from qwenctl.config import load_config
    from qwenctl.render import serve as render_serve
    from qwenctl.render.run import RunReporter

    request = _run_request(size, quant, backend, n_ctx or load_config().ctx, profile, model_arg, offline=offline, yes=yes,
                           smoke_seconds=0.0, model_opt=model, gpus=gpus, workers=workers)
    target = serving.resolve_target(request, RunReporter(ask=_ask_on_terminal(), quiet=as_json))
    options = serving.ServeOptions(host=host, port=port, api_key=api_key or None, parallel=parallel, drain_s=drain_s,
                                   verbose=logging.getLogger().isEnabledFor(logging.INFO))
    serving.serve(target, options, on_ready=lambda info: (render_serve.ready(info, as_json), _resident(info)))


def _resident(info) -> None:
    """Announce this server for `run` and `ps` (qwenctl/resident.py) until the process ends."""
    import atexit

    from qwenctl import resident

    try:
        atexit.register(resident.unregister, resident.register(info))
    except OSError as e:  # the state folder is not writable: serving goes on, unlisted
        logging.getLogger("qwenctl.serve").warning("not listed for `qwenctl ps`: %s", e)

# --- worker ---


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="IPv4 address to listen on; anything but loopback is reachable by others, unauthenticated.")
@click.option("--port", default=50052, show_default=True, type=click.IntRange(1, 65535),
              help="Port of llama.cpp's RPC server (the info answer uses PORT+1).")
@click.option("--device", "devices", multiple=True, metavar="NAME",
              help="Offer only this device (CPU, CUDA0, ...); repeat for more. Default: every GPU, else the CPU.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the CPU device (default: as run uses).")
@click.option("--no-info", is_flag=True, help="Do not answer what this machine is on PORT+1.")
def worker(host, port, devices, threads, no_info) -> None:
    """Offer this machine's devices to another qwenctl (llama.cpp's RPC server)."""
    from qwenctl.render import worker as view
    from qwenctl.worker import serve_worker

    serve_worker(host, port, devices, threads, info=not no_info, on_ready=view.ready)
    view.stopped()


# --- pull / models / rm ---


@cli.command()
@model_argument
@click.option("--size", help="Without MODEL: pull the planned model of this size.")
@click.option("--quant", help="Without MODEL: pull the planned model in this quant.")
@click.option("--backend", type=click.Choice(["llama.cpp", "mlx"]), help="Without MODEL: plan for this engine.")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=256), help="Without MODEL: plan for this context.")
@click.option("--profile", help="Plan for this hardware profile instead of this machine.")
@click.option("--all", "all_quants", is_flag=True,
              help="A GGUF repo named alone: every quant, not the planned one (the total is said first).")
@click.option("--revision", help="Branch, tag or commit (default: main).")
@click.option("--offline", is_flag=True, help="Use only the cache; fail clearly if the files are not there.")
@json_option
def pull(model_arg, size, quant, backend, n_ctx, profile, all_quants, revision, offline, as_json) -> None:
    """Download MODEL (default: the planned model) into the Hugging Face cache, resuming and verifying it.

    MODEL: a size (7b: the quant the plan picks here), size:quant (7b:q8_0), qwen2.5:7b, or REPO[:FILE|:QUANT]
    on Hugging Face. A GGUF repo named alone means the quant the plan picks, never all of them (that is
    --all); REPO:FILE one GGUF (every part of a split one); REPO:QUANT, e.g. Qwen/Qwen2.5-7B-Instruct-GGUF:q4_k_m.
    An MLX repo is one model: the whole repo.
    """
    from qwenctl import pipeline, render
    from qwenctl.render import models as view

    model = _model(model_arg, None, size, quant, profile)
    request = pipeline.RunRequest(size=size, quant=quant, backend=backend, n_ctx=n_ctx, profile=profile, model=model,
                                  offline=offline, all_quants=all_quants)
    with view.PullBar(model or "the planned model") as bar:
        result = pipeline.pull_model(request, view.PullReporter(bar, quiet=as_json), revision=revision)
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
@click.argument("spec", metavar="MODEL")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
@json_option
def rm(spec: str, yes: bool, dry_run: bool, as_json: bool) -> None:
    """Remove a model from the cache: REPO entirely, REPO:FILE or REPO:QUANT (all parts of a split GGUF), a
    size:quant as `qwenctl models` names it (7b:q8_0), or a size (7b) of which one model is cached."""
    from qwenctl import fetch, render
    from qwenctl.errors import QwenctlError
    from qwenctl.render import models as view

    spec = fetch.removal_spec(spec)
    plan = fetch.remove(spec, dry_run=True)
    if not (dry_run or yes):
        ask = _ask_on_terminal()
        if ask is not None:
            view.removed(plan, err=True)  # "would remove REPO: 2 files, 4.36 GiB would be freed"
        if ask is None or not ask("remove?"):
            raise QwenctlError(f"not removing {spec}", hint="rerun with --yes to remove without asking")
    result = plan if dry_run else fetch.remove(spec)
    render.print_json(result, "rm") if as_json else view.removed(result)

# --- bench ---
@cli.command()
@model_argument
@click.option("--model", metavar="MODEL", help="The same as the MODEL argument.")
@click.option("--size", help="Bench the planned model of this size, e.g. 7B.")
@click.option("--quant", help="Bench the planned model with this quantization, e.g. q4_k_m.")
@click.option("--backend", type=click.Choice(["llama.cpp", "mlx"]), help="Default: the plan's; mlx for a folder, else llama.cpp.")
@click.option("-p", "--n-prompt", default=512, show_default=True, help="Prompt tokens per pp run.")
@click.option("-n", "--n-gen", default=128, show_default=True, help="Tokens decoded per tg run.")
@click.option("-r", "--repetitions", default=3, show_default=True, help="Timed runs after one warm-up.")
@click.option("-ngl", "--gpu-layers", "n_gpu_layers", type=int, help="Layers on the GPU (-1: all; default: as `run` loads the model).")
@click.option("-sm", "--split-mode", type=click.Choice(["none", "layer", "tensor"]),
              help="How to spread the model over several GPUs (default: the planner's choice).")
@gpus_option
@workers_option
@click.option("-t", "--threads", type=click.IntRange(min=1), help="CPU threads (default: as `run` loads the model).")
@click.option("-b", "--batch", "n_batch", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--ctx", "n_ctx", type=click.IntRange(min=1), help="Context size (default: n-prompt + n-gen, as llama-bench).")
@click.option("-fa", "--flash-attn/--no-flash-attn", default=None,
              help="Flash attention (default: as `run` loads the model: on with a GPU, else llama.cpp's auto rule).")
@click.option("--kv-cache-type", type=click.Choice(KV_CACHE_TYPES), default="f16", show_default=True)
@click.option("--bandwidth", help="Memory bandwidth for the roofline (e.g. 3.35TB/s); default: detected.")
@click.option("--no-chat", is_flag=True, help="Skip the end-to-end chat runs (with sampling).")
@click.option("--no-save", is_flag=True, help="Do not append the result to the history.")
@click.option("--history", is_flag=True, help="Show earlier runs on this machine instead of measuring.")
@click.option("-y", "--yes", is_flag=True, help="Download the model without asking.")
@click.option("--offline", is_flag=True, help="Use only what is already downloaded; never contact Hugging Face.")
@json_option
def bench(model_arg, model, size, quant, backend, n_prompt, n_gen, repetitions, n_gpu_layers, split_mode, gpus, workers, threads,
          n_batch,
          n_ctx, flash_attn,
          kv_cache_type, bandwidth, no_chat, no_save, history, yes, offline, as_json) -> None:
    """Measure prompt processing, decoding, chat latency and memory of MODEL (llama-bench's method).

    MODEL as for `run` (7b, 7b:q8_0, qwen2.5:7b, REPO[:FILE|:QUANT], a path, ollama:NAME[:TAG]); without it,
    the model `qwenctl plan` picks (downloaded first, after asking, if it is not in the cache). Settings
    not given are the ones `run` would load the model with.
    """
    from qwenctl import bench as bench_mod
    from qwenctl import render
    from qwenctl.render import bench as show

    if history:
        from qwenctl.bench_history import read_history

        past = read_history()
        return render.print_json(past, "bench-history") if as_json else show.show_history(past)
    _gpus(gpus, None)
    chosen = _bench_target(_model(model_arg, model, size, quant, None), size, quant, backend, yes=yes, offline=offline,
                           quiet=as_json, workers=workers)
    options = bench_mod.options_for(chosen.load_options, n_prompt=n_prompt, n_gen=n_gen, n_ctx=n_ctx,
                                    n_gpu_layers=n_gpu_layers, n_threads=threads, n_batch=n_batch,
                                    flash_attn=flash_attn, kv_cache_type=kv_cache_type, split_mode=split_mode,
                                    workers=workers)
    with show.progress() as tick:
        result = bench_mod.bench_prepared(chosen, options, bandwidth=bandwidth, save=not no_save, n_prompt=n_prompt,
                                          n_gen=n_gen, repetitions=repetitions, chat=not no_chat, progress=tick)
    render.print_json(result, "bench") if as_json else show.show_result(result)


def _bench_target(model, size, quant, backend, *, yes: bool, offline: bool, quiet: bool, workers: tuple[str, ...] = ()):
    """What bench measures, loaded as `run` would load it: the planned model, or --model (fetched like
    `run` fetches it when it names a repo)."""
    from qwenctl import pipeline
    from qwenctl.render.run import RunReporter

    request = pipeline.RunRequest(size=size, quant=quant, backend=backend, model=model, offline=offline,
                                  assume_yes=yes, smoke_seconds=0.0, workers=workers)
    return pipeline.prepare(request, RunReporter(ask=_ask_on_terminal(), quiet=quiet))


# --- run ---


@cli.command()
@model_choice_options
@click.option("-y", "--yes", is_flag=True, help="Download without asking.")
@click.option("--no-chat", is_flag=True, help="Stop after the smoke test.")
@click.option("--system", help="System prompt (default: the config file's, else Qwen's own).")
@click.option("-p", "--prompt", help="Answer this one prompt and exit; a prompt piped on stdin does the same.")
@click.option("-n", "--max-tokens", type=click.IntRange(min=1), metavar="TOKENS",
              help="Longest reply (default: until the context is full).")
@click.option("--temperature", type=click.FloatRange(min=0), help="Sampling temperature (default 0.7; 0: always the likeliest token).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), help="Nucleus sampling (default 0.8).")
@click.option("--top-k", type=click.IntRange(min=0), help="Sample from the k likeliest tokens (default 20; 0: no limit).")
@click.option("--seed", type=click.IntRange(min=0), help="Fixed seed: the same prompt gives the same reply.")
@click.option("-q", "--quiet/--no-quiet", default=None, help="Nothing on stderr but errors: stdout is the reply alone.")
@click.option("--no-log", is_flag=True, help="Keep no transcript of this run (qwenctl logs).")
@click.option("--smoke-test/--no-smoke-test", "smoke", default=None,
              help="Measure the speed before the chat: by default once per model and machine, then remembered.")
@click.option("--no-server", is_flag=True, help="Load the model here even when a `qwenctl serve` of it is running.")
@click.option("--offline", is_flag=True, help="Use only what is already downloaded; never contact Hugging Face.")
@json_option
def run(model_arg, size, quant, backend, n_ctx, profile, model, gpus, workers, yes, no_chat, system, prompt, max_tokens, temperature,
        top_p, top_k, seed, quiet, no_log, smoke, no_server, offline, as_json) -> None:
    """Chat with MODEL (default: the best model for this machine): plan, download, load, then chat.

    MODEL: a size (7b), size:quant (7b:q8_0), an Ollama-style tag (qwen2.5:7b, qwen2.5:7b-instruct-q4_k_m),
    REPO[:FILE|:QUANT] on Hugging Face, a path (a GGUF file of any name, an MLX folder), or ollama:NAME[:TAG]
    from Ollama's store. A running `qwenctl serve` of the same model answers instead of a second copy.
    """
    from qwenctl import chat, pipeline, render
    from qwenctl.config import load_config
    from qwenctl.conversation import Conversation, default_system_prompt
    from qwenctl.render.chat import ChatUI
    from qwenctl.render.run import RunReporter

    cfg = load_config()
    one_shot = prompt is not None or not sys.stdin.isatty()
    if as_json and not (one_shot or no_chat):
        raise click.UsageError("--json needs -p PROMPT, a prompt on stdin, or --no-chat")
    quiet = bool(cfg.quiet) if quiet is None else quiet
    request = _run_request(size, quant, backend, n_ctx or cfg.ctx, profile, model_arg, offline=offline, yes=yes,
                           smoke_seconds=0.0 if one_shot and not no_chat else pipeline.RunRequest.smoke_seconds,
                           model_opt=model, smoke=smoke, gpus=gpus, workers=workers)
    request = dataclasses.replace(request, resident=not no_server)
    reporter = RunReporter(ask=_ask_on_terminal(), quiet=as_json, silent=quiet, brief=one_shot)
    sampling = cfg.sampling_options(Conversation().sampling)
    flags = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k, "seed": seed}
    sampling = dataclasses.replace(sampling, **{k: v for k, v in flags.items() if v is not None})
    conversation = Conversation(system=system or cfg.system or default_system_prompt(), sampling=sampling)
    started = pipeline.start(request, reporter)
    transcript = None
    if not no_log and cfg.log is not False and not no_chat:
        from qwenctl.logs import TranscriptLog

        transcript = TranscriptLog(started.prepared.model_name, warn=reporter.warn)
    try:
        if no_chat:
            if as_json:
                render.print_json(started.summary(), "run")
            return
        if one_shot:
            ui = ChatUI.one_shot(quiet=quiet)
            text = prompt if prompt is not None else sys.stdin.read()
            result = pipeline.answer(started.session, text, conversation.system, conversation.sampling,
                                     on_text=None if as_json else ui.reply_text, warn=reporter.warn)
            if as_json:
                render.print_json(result, "run.reply")
            else:
                ui.reply_done(result.reply)
            if transcript is not None:  # after the reply's last line: a warning from the log is a line of its own
                transcript.start()
                transcript.record(conversation.system, text, result.reply, conversation.sampling)
            return
        from qwenctl.render.run import model_facts

        ui = ChatUI(history=_input_history(cfg))
        ui.welcome(started.prepared.model_name, started.session.n_ctx)
        chat.Chat(started.session, ui, conversation, about=model_facts(started), transcript=transcript).run()
    finally:
        if transcript is not None:
            transcript.close()
        started.session.close()


def _input_history(cfg):
    """The file that keeps what was typed at >>> between chats, unless the config says `history = false`."""
    if cfg.history is False:
        return None
    import platformdirs

    return platformdirs.user_state_path("qwenctl") / "history"


# --- config / logs ---


@cli.command("config")
@json_option
def config_command(as_json: bool) -> None:
    """Show the config file's path and every default it sets (flags win over the file)."""
    from qwenctl.config import load_config
    from qwenctl.conversation import Conversation, default_system_prompt

    cfg = load_config()
    if as_json:
        from qwenctl.render import print_json

        return print_json(cfg, "config")
    from qwenctl.backends import SamplingOptions
    from qwenctl.render.daily import show_config

    base = Conversation().sampling
    defaults = {"model": "the plan's choice", "ctx": "the plan's (8192 or less)", "system": default_system_prompt(),
                "quiet": "false", "log": "true", "history": "true"}
    defaults |= {f"sampling.{k}": "none" if v is None else str(v) for k, v in dataclasses.asdict(base).items()
                 if k in SamplingOptions.__dataclass_fields__}
    show_config(cfg, defaults)


@cli.group("logs", invoke_without_command=True)
@click.option("-n", "--count", "limit", default=3, show_default=True, type=click.IntRange(min=0),
              help="How many replies, the latest last (0: all).")
@click.option("-c", "--current", is_flag=True, help="Only the latest conversation.")
@click.option("--conversation", metavar="ID", help="Only this conversation.")
@click.option("-q", "--query", metavar="TEXT", help="Only replies whose prompt or text contains TEXT.")
@click.option("-m", "--model", metavar="TEXT", help="Only replies of a model whose name contains TEXT.")
@json_option
@click.pass_context
def logs_command(ctx, limit, current, conversation, query, model, as_json) -> None:
    """Show the transcript log: every prompt and reply of `run`, kept in SQLite.

    `log = false` in the config file, or `run --no-log`, keeps none.
    """
    if ctx.invoked_subcommand is not None:
        return
    from qwenctl.logs import read_logs

    result = read_logs(limit=limit, conversation=conversation, current=current, query=query, model=model)
    if as_json:
        from qwenctl.render import print_json

        return print_json(result, "logs")
    from qwenctl.render.daily import show_logs

    show_logs(result)


@cli.command("ps")
@json_option
def ps_command(as_json: bool) -> None:
    """List the running `qwenctl serve` processes: model, memory, port, uptime (`run` uses them)."""
    from qwenctl.resident import status

    result = status()
    if as_json:
        from qwenctl.render import print_json

        return print_json(result, "ps")
    from qwenctl.render.daily import show_servers

    show_servers(result)


@logs_command.command("path")
def logs_path_command() -> None:
    """Print where the transcript log is."""
    from qwenctl.logs import logs_path

    click.echo(str(logs_path()))


def _examples() -> None:
    from qwenctl.help import add_examples

    add_examples(cli)


_examples()
