"""llama-cpp-python backend: GGUF models on the CPU, CUDA or Metal.

The file is validated (gguf_check) before llama.cpp sees it. Generation renders the chat
template embedded in the GGUF and runs the one generation loop (``backends.generation``): the
token is drawn on the device by a llama.cpp sampler chain attached to the sequence, and only
its id comes back (``device_sampling = False`` draws the same chain on the host, for bench's
comparison). The KV cache is reused across chat turns. Benchmarks use ``prefill``/``decode_one``:
llama_decode on the raw context without sampling, as llama-bench does, so the figures are
comparable with it.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import gc
import logging
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from qwenctl.backends import KV_CACHE_TYPES, ChatTemplateSession, GenerationEvent, LoadOptions, MemoryUse, SamplingOptions
from qwenctl.backends import llama_amx as amx
from qwenctl.backends import llama_flash as flash
from qwenctl.backends import memory as mem
from qwenctl.backends.generation import Engine, Request, run_one
from qwenctl.backends.gguf_check import GgufInfo, check_gguf, part_paths, read_gguf_header
from qwenctl.backends.llama_params import cpu_only, op_offload
from qwenctl.backends.sampling import ChainSpec, device_report
from qwenctl.cpu_share import runnable_cpus
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware.usage import apple_silicon
from qwenctl.install import INSTALL

log = logging.getLogger("qwenctl.llama")


# Fractions of the layers kept on the GPU after an out-of-memory at load, tried in order.
_OOM_LADDER = (0.75, 0.5, 0.25, 0.0)
_OOM_MARKERS = ("out of memory", "failed to allocate", "unable to allocate", "cudamalloc failed")

_log_callback = None  # keeps the ctypes callback alive for as long as llama.cpp may call it
_recent_errors: collections.deque[str] = collections.deque(maxlen=50)  # warn/error lines, to explain a failed load
_repacked: list[str] = []  # the tensors the load being made copied into llama.cpp's CPU repack buffer (its debug log)
_REPACKED = re.compile(r"repack tensor (\S+)")


def route_llama_logs() -> None:
    """Send llama.cpp's own log lines to the ``qwenctl.llama`` logger instead of stderr.

    Warnings and errors show with -v (failures also become a QwenctlError), the rest with -vv.
    Called before every load, because llama.cpp has one process-wide log callback and others set it
    too (detect silences it while it asks libllama about GPU offload).
    """
    global _log_callback
    import llama_cpp

    if _log_callback is not None:
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        return

    # ggml_log_level of the vendored ggml: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line.
    last = [logging.DEBUG]

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level != 5:
            last[0] = logging.INFO if level in (3, 4) else logging.DEBUG
        line = text.decode("utf-8", "replace").rstrip("\n")
        if "repack tensor" in line and (found := _REPACKED.search(line)):
            _repacked.append(found.group(1))
        if last[0] == logging.INFO or "Flash Attention" in line:  # + llama.cpp's verdict on -fa auto
            _recent_errors.append(line)
        if log.isEnabledFor(last[0]):
            log.log(last[0], "%s", line)

    _log_callback = _callback
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as e:
        raise QwenctlError(f"llama-cpp-python is not installed ({e})", hint=INSTALL["llama"],
                           code=ExitCode.BACKEND) from None
    route_llama_logs()
    return llama_cpp


@functools.lru_cache(maxsize=1)
def default_threads() -> int:
    """For a caller whose options name no thread count: ``machine.threads`` of this machine, the rule
    run, bench and serve load with (llama-cpp-python would use half the logical CPUs)."""
    from qwenctl.hardware import detect
    from qwenctl.machine import threads

    return threads(detect())


class LlamaCppSession(ChatTemplateSession):
    """A GGUF model loaded in llama-cpp-python (see the Session protocol)."""

    backend = "llama.cpp"

    def __init__(self, llm, info: GgufInfo, options: LoadOptions, n_gpu_layers: int, load_seconds: float,
                 notes: tuple[str, ...], gpu_baseline: tuple[int, ...] | None, n_threads: int,
                 repacked: Sequence[str] = ()):
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.llm = llm
        self.info = info
        self.options = options
        # llama.cpp pads small contexts (to 256) but llama-cpp-python's token buffer keeps the requested size
        self.n_ctx = min(llm.n_ctx(), len(llm.input_ids))
        self.n_gpu_layers = n_gpu_layers
        self.n_vocab = llm.n_vocab()
        self.n_threads = n_threads
        self.flash_attn = flash.resolved(options.flash_attn, _recent_errors)  # what llama.cpp used (auto: its verdict)
        self.load_seconds = load_seconds
        self.notes = notes
        self._gpu_baseline = gpu_baseline
        self.repacked = tuple(repacked)  # the tensors llama.cpp copied into its CPU repack buffer at load
        self._repacked_ranges = _file_ranges(info, set(self.repacked))
        self._format = chat_formatter(llm, str(info.path))
        # on a GPU llama_decode only queues the work: the next token decodes while this one becomes text
        self.engine = Engine(llm.ctx, llm.model, 1, self.n_ctx, options.n_batch, overlap=n_gpu_layers != 0)
        self.device_sampling = True  # False: the same sampler chain on the host (bench's comparison)
        self.sampling_note: str | None = None  # where the first reply's tokens were drawn, once known

    # --- text ---------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """Plain text to tokens; special-token text in user input stays text (no prompt injection)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def chat_prompt(self, messages: Sequence[dict]) -> list[int]:
        """The prompt tokens for `messages` through the model's own chat template."""
        try:
            prompt = self._format(messages=list(messages)).prompt
        except Exception as e:  # noqa: BLE001 - jinja2 errors from a template the user's messages do not fit
            raise QwenctlError(f"the chat template rejected the messages: {e}", code=ExitCode.BAD_INPUT) from None
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def generate(self, prompt: list[int], sampling: SamplingOptions) -> Iterator[GenerationEvent]:
        """Stream one event per generated token; stops at an end-of-generation token, max_tokens or the context."""
        self.check_prompt_fits(prompt)
        limit = sampling.max_tokens if sampling.max_tokens is not None else self.n_ctx  # the context bounds it too
        request = Request(tuple(prompt), ChainSpec.of(sampling), limit, device=self.device_sampling)
        n, finish, last = 0, "interrupted", (0.0, 0.0)
        steps = run_one(self.engine, request)
        try:
            for timed in steps:
                n, last = timed.tick.generated, (timed.prompt_seconds, timed.generation_seconds)
                if self.sampling_note is None and self.device_sampling:
                    self._note_sampling()
                if timed.tick.finish_reason:
                    finish = timed.tick.finish_reason
                    yield GenerationEvent(timed.tick.text, len(prompt), n, *last, finish)
                    return
                yield GenerationEvent(timed.tick.text, len(prompt), n, *last)
        except KeyboardInterrupt:
            pass
        finally:
            steps.close()
        yield GenerationEvent("", len(prompt), n, *last, finish)

    def _note_sampling(self) -> None:
        """Log once where the device chain ran (a backend without the ops falls back to the host)."""
        chain = self.engine.slots[0].chain
        if chain is None:
            return
        report = device_report(self.llm.ctx, -1, chain, tuple(_recent_errors))
        self.sampling_note = report.detail
        (log.debug if report.on_device else log.warning)("%s", report.detail)

    # --- raw decoding, for bench ----------------------------------------------------------------
    def reset(self) -> None:
        """Empty the KV cache (and forget the prefix the generation loop would reuse)."""
        self.engine.forget()
        self.llm.n_tokens = 0

    def _decode(self, tokens: Sequence[int]) -> None:
        lc = self._llama_cpp
        self.engine.detach_all()  # decode only: no sampler in the graph, as llama-bench
        arr = (lc.llama_token * len(tokens))(*tokens)
        rc = lc.llama_decode(self.llm.ctx, lc.llama_batch_get_one(arr, len(tokens)))
        if rc != 0:
            raise QwenctlError(f"llama_decode failed (code {rc})", hint="the context may be full; try a larger --ctx",
                               code=ExitCode.BACKEND)

    def prefill(self, tokens: Sequence[int]) -> None:
        """Process prompt tokens in n_batch chunks, logits for the last one only, and wait for the device."""
        step = self.options.n_batch
        for i in range(0, len(tokens), step):
            self._decode(tokens[i : i + step])
        self._llama_cpp.llama_synchronize(self.llm.ctx)

    def decode_one(self, token: int) -> None:
        """Decode one token (its logits computed, not sampled) and wait for the device, like llama-bench's tg."""
        self._decode((token,))
        self._llama_cpp.llama_synchronize(self.llm.ctx)

    # --- resources ------------------------------------------------------------------------------
    def memory(self) -> MemoryUse:
        device = mem.gpu_used_by_device()
        own: int | None = None
        by_device: tuple[int, ...] = ()
        if device is not None and self._gpu_baseline is not None and self.n_gpu_layers != 0:
            by_device = tuple(max(now - before, 0) for now, before in zip(device, self._gpu_baseline))
            own = sum(by_device)
        return MemoryUse(host_rss_bytes=mem.host_rss_bytes(), reclaimable_bytes=mem.resident_file_bytes(self._repacked_ranges),
                         gpu_bytes=own, gpu_bytes_by_device=by_device if len(by_device) > 1 else ())

    def close(self) -> None:
        self.engine.close()
        self.llm.close()


def _file_ranges(info: GgufInfo, names: set[str]) -> tuple[tuple[str, int, int], ...]:
    """(file, offset, length) of the named tensors' data, over every part of a split model."""
    if not names:
        return ()
    headers = [info] + [read_gguf_header(p) for p in part_paths(Path(info.path))[1:]]
    return tuple((h.path, h.data_offset + t.offset, t.n_bytes) for h in headers for t in h.tensors if t.name in names)


def chat_formatter(llm, where: str):
    """The GGUF's own chat template as llama-cpp-python renders it (also what `serve` uses)."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise QwenctlError(f"{where} has no chat template", hint="use a Qwen2.5 Instruct GGUF", code=ExitCode.BAD_INPUT)
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    vocab_text = lambda t: llm.detokenize([t], special=True).decode("utf-8", "replace")  # noqa: E731
    return Jinja2ChatFormatter(template, eos_token=vocab_text(llm.token_eos()), bos_token=vocab_text(llm.token_bos()))


def _is_oom(error: Exception) -> bool:
    text = " ".join([str(error), *_recent_errors]).lower()
    return any(marker in text for marker in _OOM_MARKERS)


def can_offload(workers: bool) -> bool:
    """Whether layers asked for the GPU leave the CPU: to attached RPC workers' devices or to a GPU of this
    machine (an RPC build says "offload" on any machine: asked of ggml's own devices, hardware.engines)."""
    from qwenctl.hardware.engines import llama_supports_gpu_offload

    return workers or bool(llama_supports_gpu_offload())


def _gpu_notes(wanted_gpu: bool, workers: bool) -> tuple[bool, list[str]]:
    """(offload possible, notes): a CPU-only build on a GPU machine is worth saying, with the fix."""
    if can_offload(workers):
        return True, []
    if not wanted_gpu:
        return False, []
    if mem.nvidia_gpu_present():
        note = ("this llama-cpp-python was built without GPU support, so the model runs on the CPU; "
                f"for CUDA reinstall it with: {INSTALL['llama-cuda']}")
    elif apple_silicon():
        note = f"this llama-cpp-python was built without Metal, so the model runs on the CPU; reinstall it with: {INSTALL['llama-metal']}"
    else:  # no GPU to offload to: the CPU is the plan, not a fallback
        return False, []
    return False, [note]  # shown by the caller (run prints session notes); logging it too said it twice


def split_arguments(options: LoadOptions) -> dict:
    """llama-cpp-python's split_mode / tensor_split / main_gpu for the options' split (none: its defaults)."""
    from qwenctl.split import LLAMA_SPLIT_MODE

    if options.split_mode is None:
        return {}
    if options.split_mode not in LLAMA_SPLIT_MODE:
        raise QwenctlError(f"unknown split mode {options.split_mode!r}", hint=f"use {', '.join(LLAMA_SPLIT_MODE)}",
                           code=ExitCode.BAD_INPUT)
    args: dict = {"split_mode": LLAMA_SPLIT_MODE[options.split_mode], "main_gpu": options.main_gpu}
    if options.tensor_split:
        args["tensor_split"] = list(options.tensor_split)
    return args


def kv_type_id(kind: str) -> int:
    """llama.cpp's ggml type id of a KV cache type (``f16``, ``q8_0``, ``q4_0``): its GGML_TYPE_* constant."""
    import llama_cpp

    if kind not in KV_CACHE_TYPES:
        raise QwenctlError(f"unknown KV cache type {kind!r}", hint=f"use {', '.join(KV_CACHE_TYPES)}", code=ExitCode.BAD_INPUT)
    return int(getattr(llama_cpp, f"GGML_TYPE_{kind.upper()}"))


def load(model_path: Path, options: LoadOptions) -> LlamaCppSession:
    """Load a GGUF; on a GPU out-of-memory, retry with fewer layers on the GPU and say so in `notes`."""
    info = check_gguf(Path(model_path))
    llama_cpp = _import_llama_cpp()
    if options.workers:
        from qwenctl.backends import rpc

        rpc.attach(options.workers)  # each worker checked first: a clear error, never llama.cpp's abort
    can_offload, notes = _gpu_notes(options.n_gpu_layers != 0, bool(options.workers))
    n_layers = int(info.get("block_count", 0)) + 1  # + the output layer, as llama.cpp counts
    wanted = 0 if not can_offload else (n_layers if options.n_gpu_layers < 0 else min(options.n_gpu_layers, n_layers))
    # (layers on the GPU, no GPU at all): fewer layers after each out-of-memory, and last the CPU alone, where a GPU
    # whose memory another program holds cannot even take the context llama.cpp starts on it with no layer there
    ladder = [(n, options.cpu_alone) for n in
              [wanted] + sorted({int(wanted * f) for f in _OOM_LADDER if int(wanted * f) < wanted}, reverse=True)]
    if can_offload and not options.workers and not ladder[-1][1]:
        ladder.append((0, True))
    threads = options.n_threads or default_threads()
    if options.n_threads and threads > (cpus := runnable_cpus()):  # the default is never more
        notes.append(f"{threads} threads on {cpus} CPU{'s' if cpus > 1 else ''}: llama.cpp's threads wait for each other "
                     f"at every step, so the ones without a CPU hold up all of them (on a 2-CPU machine 4 threads decoded "
                     f"3.3x slower than 2); give it at most {cpus}")
    gpu_baseline = mem.gpu_used_by_device() if wanted else None

    last_error: Exception | None = None
    for rung, (ngl, cpu_alone) in enumerate(ladder):
        _recent_errors.clear()
        _repacked.clear()
        start = time.perf_counter()
        try:
            # flash attention None: llama.cpp's auto rule, as llama-bench's default
            with flash.flash_attn_mode(options.flash_attn), op_offload(options.op_offload), cpu_only(cpu_alone), \
                    amx.safe_buffers(t.type_name for t in info.tensors) as amx_problem:
                llm = llama_cpp.Llama(
                    str(model_path), n_gpu_layers=ngl, n_ctx=options.n_ctx, n_batch=options.n_batch,
                    n_ubatch=options.n_batch, n_threads=threads, n_threads_batch=threads,
                    flash_attn=bool(options.flash_attn), type_k=kv_type_id(options.kv_cache_type),
                    type_v=kv_type_id(options.kv_cache_type), seed=options.seed, verbose=False,
                    **split_arguments(options),
                )
        except (ValueError, RuntimeError) as e:  # llama-cpp-python's "Failed to load model / create context"
            last_error = e
            gc.collect()  # free what the failed attempt allocated (its model's GPU buffers) before the next
            if rung + 1 < len(ladder) and _is_oom(e):
                log.info("out of GPU memory with %d layers on the GPU; retrying with fewer", ngl)
                continue
            break
        load_seconds = time.perf_counter() - start
        if amx_problem:
            notes.append(amx_problem)
        if cpu_alone and wanted:
            notes.append(f"out of GPU memory with {wanted} of {n_layers} layers on the GPU, and with none: loaded on the "
                         "CPU alone, without the GPU (slower; `nvidia-smi` lists what holds its memory)")
        elif ngl != wanted:
            notes.append(f"out of GPU memory with {wanted} of {n_layers} layers on the GPU; "
                         f"loaded with {ngl} on the GPU and the rest on the CPU (slower)")
        return LlamaCppSession(llm, info, options, ngl, load_seconds, tuple(notes), gpu_baseline, threads, _repacked)

    detail = "; ".join(line.strip() for line in _recent_errors if line.strip())[-400:]
    raise QwenctlError(
        f"llama.cpp could not load {Path(model_path).name}: {last_error}" + (f" ({detail})" if detail else ""),
        hint="run with -vv to see llama.cpp's log" if not detail else
        ("lower --ctx or the GPU layers" if last_error is not None and _is_oom(last_error) else None),
        code=ExitCode.BACKEND)
