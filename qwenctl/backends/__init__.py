"""One small interface in front of the inference engines.

A backend is chosen by name and imported only when chosen (llama_cpp and mlx are heavy),
so adding one touches only ``_BACKENDS``. Every way of generating (chat, one-shot, bench,
the smoke test) reads the same ``GenerationEvent`` stream.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# name -> "module:function" returning a Session; imported lazily.
_BACKENDS = {
    "llama.cpp": "qwenctl.backends.llamacpp:load",
    "mlx": "qwenctl.backends.mlx:load",
}


# KV cache types a session can be loaded with; llama.cpp's ids are its GGML_TYPE_* constants
# (backends.llamacpp.kv_type_id), the bytes per value are in data/quants.json.
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int = 4096
    n_gpu_layers: int = 0  # -1 = every layer on the GPU
    n_threads: int | None = None  # None = the engine's default
    n_batch: int = 512
    flash_attn: bool | None = None  # None: llama.cpp's auto rule (on where the device supports it: always the CPU)
    kv_cache_type: str = "f16"  # one of KV_CACHE_TYPES
    seed: int = 0
    split_mode: str | None = None  # "none" | "layer" | "tensor" (qwenctl.split); None: llama.cpp's default, layers over every GPU
    tensor_split: tuple[float, ...] = ()  # each device's share, llama.cpp's device order (RPC workers, then GPUs); (): by free memory
    main_gpu: int = 0  # the GPU of split_mode "none"
    workers: tuple[str, ...] = ()  # RPC workers (host:port) whose devices join the load
    # whether llama.cpp may run a CPU layer's large batches on a GPU it finds (its op offload; None: llama.cpp's
    # default, on). A plan on the CPU says no: it prices none, and a macOS VM's paravirtual GPU cannot be trusted
    op_offload: bool | None = None

    @property
    def cpu_alone(self) -> bool:
        """Whether no GPU joins the load at all (llama_params.cpu_only): no GPU layers, no op offload, no workers."""
        return self.op_offload is False and self.n_gpu_layers == 0 and not self.workers


def _qwen_default(name: str) -> Callable[[], Any]:
    """A default from the catalog's ``generation`` table (data/models.json, with its source), read on first use."""

    def default() -> Any:
        from qwenctl.catalog import load_catalog

        return getattr(load_catalog().generation, name)

    return default


@dataclass(frozen=True)
class SamplingOptions:
    """Qwen2.5's recommended defaults (generation_config.json of the Instruct models), from the catalog."""

    temperature: float = field(default_factory=_qwen_default("temperature"))
    top_p: float = field(default_factory=_qwen_default("top_p"))
    top_k: int = field(default_factory=_qwen_default("top_k"))
    repeat_penalty: float = field(default_factory=_qwen_default("repeat_penalty"))
    max_tokens: int | None = 512  # None: until the context is full
    seed: int | None = None


@dataclass(frozen=True)
class GenerationEvent:
    """One step of a streamed reply: the new text and the running counts and timings."""

    text: str
    prompt_tokens: int
    generated_tokens: int
    prompt_seconds: float  # from the request to the first generated token
    generation_seconds: float  # from the first generated token to this one
    finish_reason: str | None = None  # None while streaming; "stop" | "length" | "interrupted"

    @property
    def prompt_tps(self) -> float:
        return self.prompt_tokens / self.prompt_seconds if self.prompt_seconds > 0 else 0.0

    @property
    def generation_tps(self) -> float:
        # the first token is produced by prompt processing; the rest by decoding
        decoded = self.generated_tokens - 1
        return decoded / self.generation_seconds if decoded > 0 and self.generation_seconds > 0 else 0.0


@dataclass(frozen=True)
class MemoryUse:
    host_rss_bytes: int
    reclaimable_bytes: int = 0  # of host_rss_bytes, clean file pages of weights the engine copied (llama.cpp's repack)
    gpu_bytes: int | None = None  # device memory this process holds, when the engine or NVML can say
    gpu_bytes_by_device: tuple[int, ...] = ()  # the same per GPU (NVML's order), where there are several


class Session(Protocol):
    """A loaded model, ready to generate.

    ``chat``/``generate`` are what people see (sampled, streamed). ``reset``/``prefill``/``decode_one``
    drive the engine without sampling, for ``bench`` to measure prompt processing and decoding the way
    llama-bench does. An engine that can sample either on the device or on the host (llama.cpp) also has
    a ``device_sampling`` attribute that bench flips to report both.
    """

    backend: str
    n_ctx: int
    n_gpu_layers: int
    n_vocab: int
    n_threads: int | None  # CPU threads the engine uses, None where it decides alone
    load_seconds: float
    notes: tuple[str, ...]  # what the loader decided on the user's behalf (OOM ladder, CPU fallback), in words

    def tokenize(self, text: str) -> list[int]: ...

    def chat_prompt(self, messages: Sequence[dict]) -> list[int]: ...

    def count_chat_tokens(self, messages: Sequence[dict]) -> int: ...

    def chat(self, messages: Sequence[dict], sampling: SamplingOptions) -> Iterator[GenerationEvent]: ...

    def generate(self, prompt: list[int], sampling: SamplingOptions) -> Iterator[GenerationEvent]: ...

    def reset(self) -> None: ...

    def prefill(self, tokens: Sequence[int]) -> None: ...

    def decode_one(self, token: int) -> None: ...

    def memory(self) -> MemoryUse: ...

    def close(self) -> None: ...


class ChatTemplateSession:
    """What every engine does the same way once it can render the chat template and generate from ids."""

    n_ctx: int

    def chat_prompt(self, messages: Sequence[dict]) -> list[int]:
        raise NotImplementedError

    def generate(self, prompt: list[int], sampling: SamplingOptions) -> Iterator[GenerationEvent]:
        raise NotImplementedError

    def count_chat_tokens(self, messages: Sequence[dict]) -> int:
        return len(self.chat_prompt(messages))

    def chat(self, messages: Sequence[dict], sampling: SamplingOptions) -> Iterator[GenerationEvent]:
        return self.generate(self.chat_prompt(messages), sampling)

    def check_prompt_fits(self, prompt: list[int]) -> None:
        """A prompt that fills the context leaves no room for one generated token: say so before the engine does."""
        if len(prompt) >= self.n_ctx:
            from qwenctl.errors import ExitCode, QwenctlError

            raise QwenctlError(f"the prompt has {len(prompt)} tokens but the context holds {self.n_ctx}",
                               hint="shorten the conversation or load with a larger context", code=ExitCode.BAD_INPUT)


def load_backend(name: str, model_path: Path, options: LoadOptions) -> Session:
    """Load `model_path` (a GGUF file or an MLX folder) in the named backend."""
    from qwenctl.errors import ExitCode, QwenctlError

    try:
        target = _BACKENDS[name]
    except KeyError:
        raise QwenctlError(f"unknown backend {name!r}", hint=f"choose one of {', '.join(_BACKENDS)}", code=ExitCode.BAD_INPUT) from None
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)(model_path, options)
