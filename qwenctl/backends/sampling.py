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

Where top-k applies, the chain is cut in two on purpose (`ChainSpec.narrow`): the device does the one
step that needs the whole vocabulary, a top-k wide enough for what follows, and copies back those
candidates; the rest of the chain runs on the host over them. Every sampler a sequence puts in the
graph costs nodes and input copies per step, while the same samplers over 84 candidates on the host
take microseconds (the project's H200, 0.5B, 16 sequences: 6.49 ms a step with Qwen's chain in the
graph, 5.28 cut; benchmarks/sampler_step.py, docs/benchmarks.md). Penalties only lower logits
and touch at most the last 64 generated tokens, so the top k after penalties are always among the
top k + 64 before them: cutting after that wider top-k draws from exactly the same distribution.
A logit bias that only lowers tokens (a ban, as clients use it) follows the same rule: a penalised chain
applies its bans on the host, before the penalties (`ChainSpec.host_bias`), and widens the device's top-k
by one per banned token. In the graph a bias is a fill, a scatter and an add over the whole vocabulary
and two input copies per sequence and step (16 sequences: 0.5 ms a step on the H200, docs/benchmarks.md).
Biases that raise a token stay on the device, before its top-k.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwenctl.backends.batched_top_k import BatchedTopK

log = logging.getLogger("qwenctl.sampling")

# llama.h: LLAMA_DEFAULT_SEED, "a random seed" for llama_sampler_init_dist
RANDOM_SEED = 0xFFFFFFFF
# llama-cpp-python's Llama(last_n_tokens_size=64): how far back the repetition penalty looks
PENALTY_LAST_N = 64
# At most this many lowering biases move to the host: each widens the device's top-k by one
HOST_BIASES_MAX = 64


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

    @property
    def penalised(self) -> bool:
        return self.repeat_penalty != 1.0 or bool(self.frequency_penalty) or bool(self.presence_penalty)

    @property
    def narrow(self) -> int:
        """How many candidates the device keeps before the host takes over (0: the chain is not cut).

        Exact only if what runs on the host cannot raise a logit (repeat penalty ≥ 1, frequency and
        presence ≥ 0, the host's biases negative): then the k best after it are among the k + n best
        before it, n the tokens it can lower (PENALTY_LAST_N for the penalties, one per bias).
        """
        if self.greedy or self.top_k <= 0:
            return 0
        if self.repeat_penalty < 1.0 or self.frequency_penalty < 0 or self.presence_penalty < 0:
            return 0
        return self.top_k + (PENALTY_LAST_N if self.penalised else 0) + len(self.host_bias)

    @property
    def host_bias(self) -> tuple[tuple[int, float], ...]:
        """The biases a cut chain applies on the host: its lowering ones, where the penalties follow them.

        llama.cpp's logit-bias sampler leaves the candidates marked as sorted, so a top-k right after it
        would keep the banned tokens; the penalties sampler marks them unsorted again whenever it is on.
        Too many bans (more than HOST_BIASES_MAX) would widen the device's top-k for little: they stay there.
        """
        lowering = tuple((t, b) for t, b in self.logit_bias if b < 0)
        return lowering if self.penalised and len(lowering) <= HOST_BIASES_MAX else ()


@functools.cache
def _marker_interface() -> tuple:
    """The marker's sampler interface with the name callback and the name's buffer, kept alive once for all chains."""
    import llama_cpp as lc

    text = ctypes.create_string_buffer(b"host from here")
    address = ctypes.addressof(text)  # returned as an address: a bytes result would be copied and leaked per call
    name = lc.llama_sampler_i_name(lambda _smpl: address)
    iface = lc.llama_sampler_i()
    iface.name = name
    return iface, name, text


def _host_from_here():
    """A sampler that does nothing and cannot run on a device, so llama.cpp ends the device's part of a chain at it.

    llama.cpp's own no-op samplers (typical at p = 1, ...) are "empty" samplers, which the device
    accepts; this one has no apply (a chain skips it) and no backend hooks, only a name.
    """
    import llama_cpp as lc

    return lc.llama_sampler_init(ctypes.byref(_marker_interface()[0]), None)


class Chain:
    """A llama.cpp sampler chain (ctypes pointer) with its spec; free it with `close`.

    While attached to a context (`attach`), llama.cpp holds the pointer: detach before freeing.
    """

    def __init__(self, spec: ChainSpec, n_vocab: int, cut: bool = True, top_k: BatchedTopK | None = None):
        """``cut``: False keeps the chain in one piece, all of it in the graph (benchmarks/sampler_step.py compares).
        ``top_k``: the context's shared top-k, which the cut's device part then uses (None: llama.cpp's own)."""
        import llama_cpp as lc

        self._lc = lc
        self.spec = spec
        self.ptr = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        add = lambda s: lc.llama_sampler_chain_add(self.ptr, s)

        def bias(pairs):
            if pairs:
                array = (lc.llama_logit_bias * len(pairs))(*(lc.llama_logit_bias(t, b) for t, b in pairs))
                add(lc.llama_sampler_init_logit_bias(n_vocab, len(pairs), array))

        self._cut = 0  # samplers before the host's part: the device's, when the chain is cut
        narrow = spec.narrow if cut else 0
        on_host = spec.host_bias if narrow else ()
        bias(tuple(p for p in spec.logit_bias if p not in on_host))
        if narrow:
            add(top_k.sampler(narrow) if top_k else lc.llama_sampler_init_top_k(narrow))
            self._cut = lc.llama_sampler_chain_n(self.ptr)
            add(_host_from_here())
            bias(on_host)
        if spec.penalised:
            add(lc.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, spec.repeat_penalty,
                                                spec.frequency_penalty, spec.presence_penalty))
        if spec.greedy:
            add(lc.llama_sampler_init_greedy())
            return
        if spec.top_k > 0 and narrow != spec.top_k:
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

    def parts(self) -> tuple[list[str], list[str]]:
        """The samplers meant for the device and those meant for the host (after the cut, if any)."""
        names = self.names()
        if not self._cut:
            return names, []
        return names[:self._cut], names[self._cut + 1:]  # the no-op marker between them is nobody's

    def reset(self) -> None:
        """Forget the penalty history and restart the draw from the seed (a new request on a reused chain)."""
        self._lc.llama_sampler_reset(self.ptr)

    def sample(self, ctx, index: int) -> int:
        """The token for output `index` of the last decode: the device's draw when it made one
        (llama.cpp then only records it for the penalties), else the host's over the logits."""
        return self._lc.llama_sampler_sample(self.ptr, ctx, index)

    def take(self, ctx, index: int) -> int:
        """`sample` for a device chain once the context is synchronised, without releasing the GIL.

        ctypes lets go of the GIL around every call, and getting it back waits for whatever else holds it:
        under `serve` the event loop's thread, until its next system call. A step that draws 16 tokens
        through 16 such calls hands the GIL over 16 times while the GPU idles; the host's half of a
        cut chain over 84 candidates takes microseconds, so it keeps the GIL instead."""
        return _sample_keeping_gil()(self.ptr, ctx, index)

    def close(self) -> None:
        if self.ptr:
            self._lc.llama_sampler_free(self.ptr)
            self.ptr = None


@functools.cache
def _sample_keeping_gil():
    """llama.cpp's llama_sampler_sample through a prototype that holds the GIL (ctypes.PYFUNCTYPE), at the
    address and with the signature llama-cpp-python declares for it."""
    import ctypes

    import llama_cpp as lc

    f = lc.llama_sampler_sample
    return ctypes.PYFUNCTYPE(f.restype, *f.argtypes)(ctypes.cast(f, ctypes.c_void_p).value)


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
    device, host = chain.parts()
    kept = lc.llama_get_sampled_candidates_count_ith(ctx, index)
    if host and 0 < kept <= chain.spec.narrow:
        return DeviceReport(True, f"sampling on the device ({' > '.join(device)}, {kept} candidates copied back), "
                                  f"then on the host over them ({' > '.join(host)})")
    why = next((line.strip() for line in reversed(list(recent_log)) if "does not have support for op" in line
                or "cannot be offloaded" in line or "backend sampling not supported" in line), "")
    partial = lc.llama_get_sampled_logits_count_ith(ctx, index) or lc.llama_get_sampled_probs_count_ith(ctx, index)
    where = "partly on the device, the rest on the host" if partial else "on the host"
    return DeviceReport(False, f"sampling {where}: this llama.cpp backend lacks an op the sampler chain needs"
                        + (f" ({why})" if why else ""))
