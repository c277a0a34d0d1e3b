"""llama.cpp sampler chains, built once for both places they can run: the device and the host.

Why one builder: the device path (the chain attached to a sequence with ``llama_set_sampler``,
so llama.cpp appends the samplers to the decode graph and copies back one token id) and the host
path (the same chain applied to the logits copied back, through ``llama_sampler_sample``) must
draw from the same distribution. Building both from one list of samplers, in one order, makes
that true by construction; tests/test_sampling_device.py checks it statistically.

The order is llama-cpp-python's ``Llama._init_sampler`` (what qwenctl sampled with before):
logit bias, repetition penalties over the last 64 generated tokens, then top-k, top-p, min-p,
temperature and a seeded draw; temperature 0 ends in greedy instead. Samplers that would do
nothing (top-k 0, top-p 1, min-p 0, no penalty) are left out so the device graph stays small.

llama.cpp runs the longest prefix of the chain whose ops the device supports and the rest on the
host (it logs "does not have support for op ..."); `device_report` says which happened, once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger("qwenctl.sampling")

# llama.h: LLAMA_DEFAULT_SEED, "a random seed" for llama_sampler_init_dist
RANDOM_SEED = 0xFFFFFFFF
# llama-cpp-python's Llama(last_n_tokens_size=64): how far back the repetition penalty looks
PENALTY_LAST_N = 64


@dataclass(frozen=True)
class ChainSpec:
    """Everything a sampler chain is built from; equal specs give interchangeable chains."""

    temperature: float = 0.7
    top_k: int = 20
    top_p: float = 0.8
    min_p: float = 0.0
    repeat_penalty: float = 1.05
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None  # None: a random seed per chain
    logit_bias: tuple[tuple[int, float], ...] = field(default=())

    @classmethod
    def of(cls, sampling, logit_bias: Mapping[int, float] | None = None, **extra) -> ChainSpec:
        """From a backends.SamplingOptions (plus a request's logit bias and penalties)."""
        return cls(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                   repeat_penalty=sampling.repeat_penalty, seed=sampling.seed,
                   logit_bias=tuple(sorted((int(k), float(v)) for k, v in (logit_bias or {}).items())), **extra)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


class Chain:
    """A llama.cpp sampler chain (ctypes pointer) with its spec; free it with `close`.

    While attached to a context (`attach`), llama.cpp holds the pointer: detach before freeing.
    """

    def __init__(self, spec: ChainSpec, n_vocab: int):
        import llama_cpp as lc

        self._lc = lc
        self.spec = spec
        self.ptr = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        add = lambda s: lc.llama_sampler_chain_add(self.ptr, s)
        if spec.logit_bias:
            biases = (lc.llama_logit_bias * len(spec.logit_bias))(*(lc.llama_logit_bias(t, b) for t, b in spec.logit_bias))
            add(lc.llama_sampler_init_logit_bias(n_vocab, len(spec.logit_bias), biases))
        if spec.repeat_penalty != 1.0 or spec.frequency_penalty or spec.presence_penalty:
            add(lc.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, spec.repeat_penalty,
                                                spec.frequency_penalty, spec.presence_penalty))
        if spec.greedy:
            add(lc.llama_sampler_init_greedy())
            return
        if spec.top_k > 0:
            add(lc.llama_sampler_init_top_k(spec.top_k))
        if spec.top_p < 1.0:
            add(lc.llama_sampler_init_top_p(spec.top_p, 1))
        if spec.min_p > 0.0:
            add(lc.llama_sampler_init_min_p(spec.min_p, 1))
        add(lc.llama_sampler_init_temp(spec.temperature))
        add(lc.llama_sampler_init_dist(RANDOM_SEED if spec.seed is None else spec.seed & 0xFFFFFFFF))

    def names(self) -> list[str]:
        lc = self._lc
        return [lc.llama_sampler_name(lc.llama_sampler_chain_get(self.ptr, i)).decode()
                for i in range(lc.llama_sampler_chain_n(self.ptr))]

    def reset(self) -> None:
        """Forget the penalty history and restart the draw from the seed (a new request on a reused chain)."""
        self._lc.llama_sampler_reset(self.ptr)

    def sample(self, ctx, index: int) -> int:
        """The token for output `index` of the last decode: the device's draw when it made one
        (llama.cpp then only records it for the penalties), else the host's over the logits."""
        return self._lc.llama_sampler_sample(self.ptr, ctx, index)

    def close(self) -> None:
        if self.ptr:
            self._lc.llama_sampler_free(self.ptr)
            self.ptr = None


def attach(ctx, seq_id: int, chain: Chain | None) -> bool:
    """Sample sequence `seq_id` on the device with `chain` (None: on the host again).

    llama.cpp rebuilds its graph reservation after a change, so callers keep a chain attached for
    as long as the same settings serve, rather than attaching per token.
    """
    import llama_cpp as lc

    return bool(lc.llama_set_sampler(ctx, seq_id, chain.ptr if chain else None))


@dataclass(frozen=True)
class DeviceReport:
    """Where the last sampled token of a sequence was drawn, and why, for one log line or bench note."""

    on_device: bool
    detail: str


def device_report(ctx, index: int, chain: Chain, recent_log: list[str] | tuple[str, ...] = ()) -> DeviceReport:
    """After a decode with `chain` attached: did the device draw the token, or did llama.cpp fall back?

    A partial fallback (the device ran a prefix of the chain, the host the rest) shows as no
    sampled token but sampled logits; the warning llama.cpp logged names the missing op.
    """
    import llama_cpp as lc

    if lc.llama_get_sampled_token_ith(ctx, index) != -1:
        return DeviceReport(True, f"sampling on the device ({' > '.join(chain.names())})")
    why = next((line.strip() for line in reversed(list(recent_log)) if "does not have support for op" in line
                or "cannot be offloaded" in line or "backend sampling not supported" in line), "")
    partial = lc.llama_get_sampled_logits_count_ith(ctx, index) or lc.llama_get_sampled_probs_count_ith(ctx, index)
    where = "partly on the device, the rest on the host" if partial else "on the host"
    return DeviceReport(False, f"sampling {where}: this llama.cpp backend lacks an op the sampler chain needs"
                        + (f" ({why})" if why else ""))
