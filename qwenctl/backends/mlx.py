"""mlx-lm backend: Hugging Face-layout model folders on Apple silicon (Metal), or the CPU elsewhere.

Generation is mlx-lm's own ``stream_generate`` with a sampler built from SamplingOptions.
For bench, ``prefill``/``decode_one`` call the model on a KV cache directly and force
evaluation (``mx.eval``), the MLX counterpart of llama_decode + synchronize.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qwenctl.backends import ChatTemplateSession, GenerationEvent, LoadOptions, MemoryUse, SamplingOptions
from qwenctl.backends import memory as mem
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.install import INSTALL


def _import_mlx():
    try:
        import mlx.core as mx
        import mlx_lm
    except ImportError as e:
        raise QwenctlError(f"mlx-lm is not installed ({e})", hint=INSTALL["mlx"],
                           code=ExitCode.BACKEND) from None
    return mx, mlx_lm


class MlxSession(ChatTemplateSession):
    """A model folder loaded in mlx-lm (see the Session protocol)."""

    backend = "mlx"

    def __init__(self, model, tokenizer, options: LoadOptions, load_seconds: float, on_gpu: bool):
        import mlx.core as mx

        self._mx = mx
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        self.n_ctx = options.n_ctx  # mlx-lm has no fixed context; qwenctl holds it to the plan's
        self.n_gpu_layers = -1 if on_gpu else 0
        self.n_vocab = int(model.args.vocab_size)
        self.n_threads: int | None = None
        self.load_seconds = load_seconds
        self.notes: tuple[str, ...] = () if on_gpu else ("mlx runs on the CPU here (no Metal GPU)",)
        self._cache: list[Any] | None = None

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, messages: Sequence[dict]) -> list[int]:
        try:
            return list(self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True))
        except Exception as e:  # noqa: BLE001 - jinja2 errors from a template the messages do not fit
            raise QwenctlError(f"the chat template rejected the messages: {e}", code=ExitCode.BAD_INPUT) from None

    def generate(self, prompt: list[int], sampling: SamplingOptions) -> Iterator[GenerationEvent]:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        self.check_prompt_fits(prompt)
        if sampling.seed is not None:
            self._mx.random.seed(sampling.seed)
        sampler = make_sampler(temp=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
        processors = make_logits_processors(repetition_penalty=sampling.repeat_penalty)
        budget = self.n_ctx - len(prompt) if sampling.max_tokens is None else min(sampling.max_tokens, self.n_ctx - len(prompt))
        start = time.perf_counter()
        first: float | None = None
        n = 0
        stream = stream_generate(self.model, self.tokenizer, prompt, max_tokens=budget, sampler=sampler,
                                 logits_processors=processors, prefill_step_size=self.options.n_batch)
        try:
            for r in stream:
                now = time.perf_counter()
                first = first or now
                n = r.generation_tokens
                yield GenerationEvent(r.text, len(prompt), n, first - start, now - first, r.finish_reason)
        except KeyboardInterrupt:
            now = time.perf_counter()
            first = first or now
            yield GenerationEvent("", len(prompt), n, first - start, now - first, "interrupted")
        finally:
            stream.close()

    # --- raw decoding, for bench ----------------------------------------------------------------
    def reset(self) -> None:
        from mlx_lm.models.cache import make_prompt_cache

        self._cache = make_prompt_cache(self.model)

    def prefill(self, tokens: Sequence[int]) -> None:
        mx = self._mx
        if self._cache is None:
            self.reset()
        step = self.options.n_batch
        for i in range(0, len(tokens), step):
            logits = self.model(mx.array(list(tokens[i : i + step]))[None], cache=self._cache)
            mx.eval(logits)

    def decode_one(self, token: int) -> None:
        mx = self._mx
        if self._cache is None:
            self.reset()
        mx.eval(self.model(mx.array([[token]]), cache=self._cache))

    def memory(self) -> MemoryUse:
        gpu = int(self._mx.get_active_memory()) if self.n_gpu_layers else None
        return MemoryUse(host_rss_bytes=mem.host_rss_bytes(), gpu_bytes=gpu)

    def close(self) -> None:
        self.model = None
        self._cache = None


def load(model_path: Path, options: LoadOptions) -> MlxSession:
    """Load an mlx-lm model folder (config.json + safetensors + tokenizer)."""
    folder = Path(model_path)
    if not (folder / "config.json").is_file():
        raise QwenctlError(f"{folder} is not an MLX model folder (no config.json)",
                           hint="the mlx backend loads a Hugging Face-layout folder; GGUF files need llama.cpp",
                           code=ExitCode.BAD_INPUT)
    mx, mlx_lm = _import_mlx()
    start = time.perf_counter()
    try:
        model, tokenizer = mlx_lm.load(str(folder))
    except (ValueError, FileNotFoundError, OSError, KeyError) as e:
        raise QwenctlError(f"mlx-lm could not load {folder}: {e}", code=ExitCode.BACKEND) from None
    if options.seed is not None:
        mx.random.seed(options.seed)
    on_gpu = mx.default_device() == mx.gpu
    return MlxSession(model, tokenizer, options, time.perf_counter() - start, on_gpu)
