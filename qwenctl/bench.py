"""Measure a model on this machine: prompt processing, decoding, chat latency and memory.

The protocol follows llama-bench so the figures can be compared with it line for line:
random prompt tokens (fixed seed), one warm-up, then for each of N repetitions an emptied
KV cache and

* **pp**: one prompt of ``n_prompt`` tokens, processed in ``n_batch`` chunks;
* **tg**: ``n_gen`` tokens decoded one at a time from an empty context, each step
  synchronized with the device and **not sampled** (llama-bench's tg).

Sampling is a cost of its own (about 1.2-1.5 ms per token over Qwen's 151,936-token
vocabulary on the host; see docs/benchmarks.md), so the end-to-end chat figures, with Qwen's
sampling settings through the chat template, are reported separately: time to first token
and generation tok/s with the sampler chain on the device (what chat and serve use), and on
llama.cpp also the same chain on the host, so the gain of device sampling stays visible.

Each figure is the median of the repetitions with its min and max. The tg efficiency is
measured tg over the bandwidth roofline (bandwidth / bytes of weights read per token).
Results are appended to a JSONL history so ``qwenctl bench --history`` shows earlier runs.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenctl.backends import LoadOptions, SamplingOptions, Session, load_backend
from qwenctl.backends import memory as mem
from qwenctl.cpu_share import ThreadTime, contended, lost_cores
from qwenctl.errors import ExitCode, QwenctlError, from_os_error
from qwenctl.hardware import detect
from qwenctl.hardware.facts import Cpu, Hardware

if TYPE_CHECKING:
    from qwenctl.pipeline import Prepared

CHAT_FILLER = "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. "

# (phase, done, total) -> None; phases: "load", "warm-up", "pp", "tg", "chat", "chat-host"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Figure:
    """The median of repeated measurements, with the extremes and every sample."""

    median: float
    min: float
    max: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Figure:
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))

    @property
    def spread(self) -> float:
        """(max - min) / median: how far apart the repetitions were."""
        return (self.max - self.min) / self.median if self.median else 0.0


@dataclass(frozen=True)
class Predicted:
    """What the planner predicted for this model and machine, shown beside the measurement."""

    tg_tps: float | None = None
    pp_tps: float | None = None
    gpu_bytes: int | None = None
    host_bytes: int | None = None
    source: str | None = None  # e.g. "qwenctl plan (estimate v1)"
    device: str | None = None  # where the prediction puts the layers: "cuda" | "metal" | "cpu"
    gpu_bytes_by_device: tuple[int, ...] = ()  # with a split: each device's, llama.cpp's order


@dataclass(frozen=True)
class Bandwidth:
    bytes_per_s: int
    source: str  # "detect: NVIDIA H100 80GB HBM3", "--bandwidth", a profile name


@dataclass(frozen=True)
class BenchResult:
    model: str
    backend: str
    machine: str
    started_at: str  # ISO 8601, UTC
    qwenctl_version: str
    engine_version: str | None
    n_prompt: int
    n_gen: int
    repetitions: int
    n_ctx: int
    n_batch: int
    n_threads: int | None  # what the engine used (None: not a llama.cpp setting)
    n_gpu_layers: int
    flash_attn: bool | None  # None: llama.cpp decided and did not say (auto)
    load_seconds: float
    pp_tps: Figure
    tg_tps: Figure
    chat_ttft_seconds: Figure | None  # request -> first token, chat template + sampling, n_prompt-token prompt
    chat_tps: Figure | None  # generation speed with sampling (on the device where the engine can)
    peak_host_rss_bytes: int
    gpu_bytes: int | None  # GPU memory held after load and the runs (NVML), None without a GPU
    weights_read_per_token_bytes: int | None
    bandwidth: Bandwidth | None
    roofline_tg_tps: float | None  # bandwidth / bytes read per token
    tg_efficiency: float | None  # measured tg / roofline
    predicted: Predicted | None = None
    notes: tuple[str, ...] = field(default=())
    chat_host_tps: Figure | None = None  # the same chat with the sampler chain on the host (llama.cpp only)
    sampling: str | None = None  # where chat_tps's tokens were drawn, in words (llama.cpp only)
    gpu_bytes_by_device: tuple[int, ...] = ()  # gpu_bytes per GPU (NVML's order) where there are several
    split: str | None = None  # how the model was spread over devices, in words; None: one device
    # host memory the model holds at its largest sample (after the load, each phase's runs): RSS less the clean file
    # pages of weights llama.cpp copied into its CPU repack buffer, which the OS drops when memory runs short; what the
    # planner's host figure means (docs/planning.md, "Calibration"). None in records from before it was measured.
    host_bytes: int | None = None
    reclaimable_bytes: int = 0  # those file pages, which peak_host_rss_bytes counts as well
    # of the CPU time the engine's threads were given in the timed runs of a CPU-only model (threads x seconds), the
    # share they ran (qwenctl.cpu_share); a contended run corrects no later plan. None: the model ran on a GPU, or the
    # runs were too short to tell
    cpu_share: float | None = None


def _machine(hw: Hardware) -> str:
    """Where the figures were measured, in words, from detect's facts (not probed again)."""
    cores = hw.cpu.physical_cores if isinstance(hw.cpu, Cpu) else None
    gpus = [g.name for g in hw.gpus]
    return f"{hw.system} {hw.machine}, {cores} cores" + (f", {', '.join(gpus)}" if gpus else "")


def _engine_version(backend: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    if backend == "llama.cpp":  # also right when llama_cpp runs from a source tree (the GPU machine)
        import llama_cpp

        return llama_cpp.__version__
    try:
        return version({"llama.cpp": "llama-cpp-python", "mlx": "mlx-lm"}.get(backend, backend))
    except PackageNotFoundError:
        return None


def _chat_messages(session: Session, n_prompt: int) -> list[dict]:
    """A user message whose chat prompt (template included) comes as close to `n_prompt` tokens as whole
    sentences allow without passing it, so TTFT is for a prompt of about the pp size."""
    base = session.count_chat_tokens([{"role": "user", "content": ""}])
    per = max(len(session.tokenize(CHAT_FILLER)), 1)
    repeats = max(1, (n_prompt - base) // per)
    return [{"role": "user", "content": CHAT_FILLER * repeats}]


def bench(
    model_path: Path,
    *,
    backend: str = "llama.cpp",
    options: LoadOptions | None = None,
    n_prompt: int = 512,
    n_gen: int = 128,
    repetitions: int = 3,
    chat: bool = True,
    bandwidth: Bandwidth | None = None,
    predicted: Predicted | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    hardware: Hardware | None = None,
) -> BenchResult:
    """Load `model_path` and measure it (see the module docstring for the protocol); `hardware` is the
    machine's facts (detected when not given), for the result's description of it."""
    if n_prompt < 1 or n_gen < 2 or repetitions < 1:
        raise QwenctlError("bench needs n_prompt >= 1, n_gen >= 2 and repetitions >= 1", code=ExitCode.USAGE)
    options = options or LoadOptions(n_ctx=n_prompt + n_gen)
    if options.n_ctx < n_prompt + n_gen:
        raise QwenctlError(f"context {options.n_ctx} is smaller than {n_prompt} + {n_gen} tokens",
                           hint="raise --ctx or lower -p/-n", code=ExitCode.USAGE)
    tick = progress or (lambda phase, done, total: None)
    from qwenctl import __version__

    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tick("load", 0, 1)
    session = load_backend(backend, Path(model_path), options)
    tick("load", 1, 1)
    gpu_samples: list[int] = []
    per_gpu: list[tuple[int, ...]] = []
    host_samples: list[tuple[int, int]] = []  # (what the model holds, the clean file pages RSS also counts)

    def sample_memory() -> None:
        use = session.memory()
        host_samples.append((use.host_rss_bytes - use.reclaimable_bytes, use.reclaimable_bytes))
        if use.gpu_bytes is not None:
            gpu_samples.append(use.gpu_bytes)
        if use.gpu_bytes_by_device:
            per_gpu.append(use.gpu_bytes_by_device)

    try:
        sample_memory()
        rng = random.Random(seed)
        vocab = session.n_vocab
        prompt = [rng.randrange(vocab) for _ in range(n_prompt)]
        gen_tokens = [rng.randrange(vocab) for _ in range(n_gen)]

        tick("warm-up", 0, 1)  # llama-bench: one pp run and one decoded token
        session.reset()
        session.prefill(prompt)
        session.reset()
        session.decode_one(gen_tokens[0])
        tick("warm-up", 1, 1)

        timed = ThreadTime(session)
        pp: list[float] = []
        for i in range(repetitions):
            tick("pp", i, repetitions)
            session.reset()
            with timed:
                t0 = time.perf_counter()
                session.prefill(prompt)
                pp.append(n_prompt / (time.perf_counter() - t0))
        tick("pp", repetitions, repetitions)
        sample_memory()

        tg: list[float] = []
        for i in range(repetitions):
            tick("tg", i, repetitions)
            session.reset()
            with timed:
                t0 = time.perf_counter()
                for token in gen_tokens:
                    session.decode_one(token)
                tg.append(n_gen / (time.perf_counter() - t0))
        tick("tg", repetitions, repetitions)
        sample_memory()

        ttft: list[float] = []
        chat_tps: list[float] = []
        chat_host_tps: list[float] = []
        sampling: str | None = None
        notes = list(session.notes)
        cpu_share = timed.share()
        if contended(cpu_share):
            notes.append(f"{lost_cores(cpu_share, session.n_threads)}: these figures understate this machine and do not "
                         "correct later plans; run bench again when the machine is quiet")
        if chat:
            messages = _chat_messages(session, n_prompt)
            chat_prompt = session.count_chat_tokens(messages)
            if chat_prompt + n_gen > session.n_ctx:
                notes.append(f"chat runs skipped: the shortest chat prompt ({chat_prompt} tokens, template included) "
                             f"and {n_gen} generated tokens do not fit the {session.n_ctx}-token context")
            fits = chat_prompt + n_gen <= session.n_ctx
            places = (True, False) if getattr(session, "device_sampling", None) is not None else (None,)
            for place in places if fits else ():
                if place is not None:
                    session.device_sampling = place
                phase = "chat-host" if place is False else "chat"
                ttft_i, tps_i = _chat_runs(session, messages, n_gen, repetitions, seed, tick, phase)
                if place is not False:
                    ttft, chat_tps = ttft_i, tps_i
                else:
                    chat_host_tps = tps_i
            if places[0] is not None:
                session.device_sampling = True
                sampling = getattr(session, "sampling_note", None)
            sample_memory()
        used_gpu = max(gpu_samples) if gpu_samples else None
        host_bytes, reclaimable = max(host_samples)
        used_by_gpu = tuple(max(s[i] for s in per_gpu) for i in range(len(per_gpu[0]))) if per_gpu else ()
        n_gpu_layers = session.n_gpu_layers
        load_seconds = session.load_seconds
        n_ctx = session.n_ctx
        n_threads = session.n_threads
    finally:
        session.close()

    from qwenctl.predict import weights_read_per_token

    read = weights_read_per_token(Path(model_path))
    tg_fig = Figure.of(tg)
    roofline = bandwidth.bytes_per_s / read if bandwidth and read else None
    return BenchResult(
        model=str(model_path),
        backend=backend,
        machine=_machine(hardware or detect()),
        started_at=started_at,
        qwenctl_version=__version__,
        engine_version=_engine_version(backend),
        n_prompt=n_prompt,
        n_gen=n_gen,
        repetitions=repetitions,
        n_ctx=n_ctx,
        n_batch=options.n_batch,
        n_threads=n_threads,
        n_gpu_layers=n_gpu_layers,
        flash_attn=getattr(session, "flash_attn", options.flash_attn),  # llama.cpp's verdict when asked for auto
        load_seconds=load_seconds,
        pp_tps=Figure.of(pp),
        tg_tps=tg_fig,
        chat_ttft_seconds=Figure.of(ttft) if ttft else None,
        chat_tps=Figure.of(chat_tps) if chat_tps else None,
        chat_host_tps=Figure.of(chat_host_tps) if chat_host_tps else None,
        sampling=sampling,
        peak_host_rss_bytes=mem.peak_host_rss_bytes(),
        host_bytes=host_bytes,
        reclaimable_bytes=reclaimable,
        gpu_bytes=used_gpu,
        gpu_bytes_by_device=used_by_gpu,
        split=_split_words(options),
        weights_read_per_token_bytes=read,
        bandwidth=bandwidth,
        roofline_tg_tps=roofline,
        tg_efficiency=tg_fig.median / roofline if roofline else None,
        predicted=predicted,
        notes=tuple(notes),
        cpu_share=cpu_share,
    )


def _chat_runs(session: Session, messages: list[dict], n_gen: int, repetitions: int, seed: int,
               tick: Progress, phase: str) -> tuple[list[float], list[float]]:
    """`repetitions` chat replies from an emptied cache: (time to first token, generation tok/s) of each."""
    ttft: list[float] = []
    tps: list[float] = []
    for i in range(repetitions):
        tick(phase, i, repetitions)
        session.reset()
        last = None
        for last in session.chat(messages, SamplingOptions(max_tokens=n_gen, seed=seed + i)):  # noqa: B007 - the last event sums the reply up
            pass
        assert last is not None
        ttft.append(last.prompt_seconds)
        if last.generated_tokens > 1 and last.generation_tps > 0:
            tps.append(last.generation_tps)
    tick(phase, repetitions, repetitions)
    return ttft, tps


def options_for(planned: LoadOptions, *, n_prompt: int, n_gen: int, n_ctx: int | None = None,
                n_gpu_layers: int | None = None, n_threads: int | None = None, n_batch: int = 512,
                flash_attn: bool | None = None, kv_cache_type: str = "f16", split_mode: str | None = None,
                workers: tuple[str, ...] = ()) -> LoadOptions:
    """The load options bench measures with: what was asked, else what `run` loads the model with
    (`planned`), and a context of n_prompt + n_gen unless one is given, as llama-bench. A split mode asked
    for keeps the planned shares when the plan spread the model over the same devices, else llama.cpp's (by
    free memory); with `workers` as well, every layer goes to the devices (RPC workers first) unless -ngl says."""
    forced = bool(split_mode and workers and workers != planned.workers)
    spread = planned.split_mode in ("layer", "tensor") and not forced
    return LoadOptions(
        n_ctx=n_ctx or n_prompt + n_gen,
        n_gpu_layers=n_gpu_layers if n_gpu_layers is not None else (-1 if forced else planned.n_gpu_layers),
        n_threads=n_threads or planned.n_threads,
        n_batch=n_batch,
        flash_attn=flash_attn if flash_attn is not None else planned.flash_attn,
        kv_cache_type=kv_cache_type,
        split_mode=split_mode or planned.split_mode,
        tensor_split=planned.tensor_split if spread or not split_mode else (),
        main_gpu=planned.main_gpu,
        workers=workers if forced else planned.workers,
        op_offload=planned.op_offload,
    )


def bench_prepared(prepared: Prepared, options: LoadOptions, *, bandwidth: str | None = None, save: bool = True,
                   **runs: Any) -> BenchResult:
    """Bench a model the pipeline prepared (`bench` keyword arguments in `runs`): the roofline's
    bandwidth (`bandwidth` as written, e.g. "3.35TB/s", else detected) and the planner's prediction
    for this file on this machine beside the measurement; with `save`, the result joins the history
    and this machine's speed record."""
    path = Path(prepared.files.load_path)
    hw = prepared.hardware
    bw = parse_bandwidth(bandwidth) if bandwidth else bandwidth_from_hardware(hw, options.n_gpu_layers != 0)
    result = bench(path, backend=prepared.backend, options=options, bandwidth=bw,
                   predicted=predict(hw, path, options, prepared.backend, prepared.workers), hardware=hw, **runs)
    if save:
        from qwenctl.bench_history import append_history

        try:
            append_history(result)
            remember_speed(hw, result)
        except OSError as e:  # a full disk or a read-only home: the figures just measured are still the answer
            why = from_os_error(e, doing="write").one_line()
            result = replace(result, notes=(*result.notes, f"not saved to the bench history or this machine's speed "
                                                           f"record: {why}"))
    return result


# --- bandwidth for the roofline -------------------------------------------------------------------

def predict(hardware, model_path: Path, options: LoadOptions, backend: str, workers: tuple = ()) -> Predicted | None:
    """The planner's figures for this very file on this machine and its workers (GGUF only: MLX folders carry no
    tensor table)."""
    if backend != "llama.cpp":
        return None
    from qwenctl.predict import predict_for_file

    p = predict_for_file(hardware, model_path, options, workers=workers)
    return Predicted(tg_tps=p.tg_tps, pp_tps=p.pp_tps, gpu_bytes=p.gpu_bytes, host_bytes=p.host_bytes, source=p.source,
                     device=p.device, gpu_bytes_by_device=p.bytes_by_device)


def _split_words(options: LoadOptions) -> str | None:
    """The split bench loaded with, as llama.cpp was told it ("tensor, shares 0.5/0.5"); None for llama.cpp's default."""
    from qwenctl.split import describe, workers_named

    return describe(options.split_mode, options.tensor_split, options.main_gpu, workers_named(options.workers))


def remember_speed(hardware, result: BenchResult) -> None:
    """Store the measured decode speed against the physics prediction for this machine (speed_history), and the
    prompt speed where the run prompted as the prediction is quoted (PP_TOKENS in one batch); not a CPU run whose
    threads lost their cores to other work (`BenchResult.cpu_share`)."""
    pred = result.predicted
    if pred is None or not pred.tg_tps or not pred.device or getattr(hardware, "name", None) is not None:
        return
    if contended(result.cpu_share):
        return  # the threads lost their cores to other work: the figures measured that work too
    from qwenctl import speed_history
    from qwenctl.speed import PP_TOKENS

    quoted = result.n_prompt == PP_TOKENS and result.n_batch >= PP_TOKENS
    speed_history.record(hardware, result.backend, pred.device, pred.tg_tps, result.tg_tps.median, "bench",
                         predicted_pp=pred.pp_tps if quoted else None, measured_pp=result.pp_tps.median if quoted else None,
                         read_bytes=result.weights_read_per_token_bytes)


def parse_bandwidth(text: str) -> Bandwidth:
    """'3.35TB/s', '819 GB/s', '100e9' -> bytes per second."""
    from qwenctl.units import parse_size

    size = parse_size(text)
    if size is None:
        raise QwenctlError(f"cannot read bandwidth {text!r}", hint="write it like 3.35TB/s or 819GB/s",
                           code=ExitCode.USAGE)
    return Bandwidth(size.value, "--bandwidth")


def bandwidth_from_hardware(hw, on_gpu: bool) -> Bandwidth | None:
    """The bandwidth the weights stream at: the first NVIDIA GPU's when offloading, else Apple's or the host's (one
    NUMA node's, as the planner prices it: `machine.one_node`)."""
    from qwenctl.hardware.facts import AppleSilicon, Memory
    from qwenctl.machine import one_node

    if on_gpu and hw.gpus and hw.gpus[0].bandwidth_bytes_per_s:
        return Bandwidth(hw.gpus[0].bandwidth_bytes_per_s, f"detect: {hw.gpus[0].name}")
    if isinstance(hw.apple, AppleSilicon) and hw.apple.bandwidth_bytes_per_s:
        return Bandwidth(hw.apple.bandwidth_bytes_per_s, f"detect: {hw.apple.chip}")
    if isinstance(hw.memory, Memory) and hw.memory.bandwidth_bytes_per_s:
        source = f"detect: {hw.memory.bandwidth_source or 'host memory'}"
        bw, node = one_node(hw.memory.bandwidth_bytes_per_s, hw)
        return Bandwidth(bw, f"{source}; {node}" if node else source)
    return None
