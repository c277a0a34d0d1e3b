"""The one generation loop on llama.cpp: chat, `run -p`, bench's chat figures and serve all go through it.

An `Engine` drives one llama.cpp context holding up to `n_seq` sequences ("slots"). Each slot has
its own sampler chain, attached to its sequence so the token is drawn on the device and only its
id comes back (``qwenctl.backends.sampling``); a request that must see the logits runs the same
chain on the host for that slot only. One `step` decodes the next token of every running slot in
one batch, which is how `serve --parallel N` answers N requests at once instead of queueing them.

Semantics are the host chain's (and ``Llama.generate``'s before it): the prompt is processed in
n_batch chunks; a slot reuses the KV cache of the longest prefix it already holds (the next chat
turn only processes the new messages); end-of-generation tokens stop without being shown; stop
strings are cut out of the text; max_tokens and the context bound the reply.

With ``overlap`` (a model on a GPU, where ``llama_decode`` only queues the work), a step draws the
tokens of the batch in flight, queues the next batch at once, and only then makes their text: the
host's share of a token (detokenising, stop strings, handing the text on) runs while the GPU
decodes the next one instead of between two decodes. A reply that a stop string ends has had one
more token decoded (it stays in the slot's cache, like any generated token); its draw is dropped.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from qwenctl.backends import batched_top_k
from qwenctl.backends.sampling import Chain, ChainSpec, attach
from qwenctl.backends.text import Pieces, TextStream
from qwenctl.errors import ExitCode, QwenctlError


@dataclass(frozen=True)
class Request:
    """What one sequence is asked to generate."""

    prompt: tuple[int, ...]
    spec: ChainSpec
    max_tokens: int
    stop: tuple[str, ...] = ()
    device: bool = True  # False: draw on the host from the copied-back logits


@dataclass(frozen=True)
class Tick:
    """One generated token's worth of a slot's reply: the text to show and, at the end, why it ended."""

    text: str
    generated: int  # tokens generated so far (end-of-generation tokens not counted)
    finish_reason: str | None = None  # "stop" | "length" once the slot is done


class Slot:
    """One sequence of the context: what its KV cache holds, its chain, and the reply in progress."""

    def __init__(self, seq_id: int):
        self.seq_id = seq_id
        self.cached: list[int] = []  # the tokens whose KV entries sequence `seq_id` holds, in order
        self.chain: Chain | None = None
        self.on_device = False
        self.request: Request | None = None
        self.next_token = -1  # sampled, not yet decoded
        self.generated = 0
        self.budget = 0
        self.stream: TextStream | None = None

    @property
    def busy(self) -> bool:
        return self.request is not None


class Engine:
    """Generation over one llama.cpp context with `n_seq` sequences of up to `n_ctx` tokens each."""

    def __init__(self, ctx, model, n_seq: int, n_ctx: int, n_batch: int, overlap: bool = False):
        import llama_cpp as lc

        self._lc = lc
        self.ctx = ctx
        self.vocab = lc.llama_model_get_vocab(model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.slots = [Slot(i) for i in range(n_seq)]
        self.pieces = Pieces(self.vocab)
        self._mem = lc.llama_get_memory(ctx)
        self._batch = lc.llama_batch_init(max(n_batch, n_seq), 0, 1)
        self._eog: dict[int, bool] = {}  # token -> ends generation, asked once per token id
        self.overlap = overlap
        self._in_flight: list[Slot] | None = None  # the slots of the batch decoding now, in batch order
        self._drawn: list[tuple[Slot, int]] | None = None  # its tokens, drawn early (before another decode)
        # one two-level top-k for every slot's chain, where enough slots can share it; one slot (chat, `run -p`,
        # bench) keeps llama.cpp's own sampler, with no Python in its graph builds
        self.top_k = (batched_top_k.BatchedTopK() if n_seq >= batched_top_k.MIN_SAMPLERS and batched_top_k.available()
                      else None)

    # --- slots ------------------------------------------------------------------------------------
    def free_slot(self, prompt: Sequence[int]) -> Slot | None:
        """The idle slot whose cache shares the longest prefix with `prompt`, or None when all are busy."""
        idle = [s for s in self.slots if not s.busy]
        return max(idle, key=lambda s: _common_prefix(s.cached, prompt), default=None)

    def start(self, slot: Slot, request: Request) -> Tick:
        """Process the prompt in `slot` and draw the first token; returns its tick (it may already end the reply)."""
        self._drain()  # a prompt's decode overwrites the outputs of the batch in flight
        prompt = list(request.prompt)
        if not prompt:
            raise QwenctlError("the prompt is empty", code=ExitCode.BAD_INPUT)
        if len(prompt) >= self.n_ctx:
            raise QwenctlError(f"the prompt has {len(prompt)} tokens but the context holds {self.n_ctx}",
                               hint="shorten the conversation or load with a larger context", code=ExitCode.BAD_INPUT)
        self._use_chain(slot, request)
        keep = min(_common_prefix(slot.cached, prompt), len(prompt) - 1)  # the last token is decoded again for its logits
        self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, keep, -1)
        slot.cached = prompt[:keep]
        slot.request = request
        slot.generated = 0
        slot.budget = max(1, min(request.max_tokens, self.n_ctx - len(prompt)))
        slot.stream = TextStream(self.pieces, request.stop)
        todo = prompt[keep:]
        for i in range(0, len(todo), self.n_batch):
            chunk = todo[i : i + self.n_batch]
            last = i + self.n_batch >= len(todo)
            self._fill([(slot, t, last and j == len(chunk) - 1) for j, t in enumerate(chunk)])
            self._decode()
            slot.cached.extend(chunk)
        return self._accept(slot, _chain(slot).sample(self.ctx, self._batch.n_tokens - 1))

    def step(self) -> list[tuple[Slot, Tick]]:
        """Decode the pending token of every busy slot in one batch and draw each slot's next token."""
        drawn = self._take_drawn()
        if self.overlap:
            for slot, token in drawn:
                slot.next_token = token
            ending = {id(slot) for slot, token in drawn if self._ends(slot, token)}
            going = [s for s in self.slots if s.busy and id(s) not in ending]
            if going:
                self._submit(going)
        return [(slot, self._accept(slot, token)) for slot, token in drawn]

    def finish(self, slot: Slot, reason: str = "stop") -> Tick:
        """End `slot`'s reply now (its KV cache stays, for the next request's prefix); the remaining text."""
        text = slot.stream.finish() if slot.stream else ""
        if self._drawn:  # a token drawn early for this reply is no longer wanted
            self._drawn = [(s, t) for s, t in self._drawn if s is not slot]
        slot.request = None
        slot.stream = None
        return Tick(text, slot.generated, reason)

    def forget(self) -> None:
        """Empty every sequence (bench and `reset` start from a clean context)."""
        self._drain()
        self._drawn = None  # what it drew belongs to replies that are over
        self._lc.llama_memory_clear(self._mem, True)
        for slot in self.slots:
            slot.cached = []

    def detach_all(self) -> None:
        """Back to plain decoding (no sampling in the graph), for bench's decode-only figures."""
        self._drain()
        for slot in self.slots:
            if slot.on_device and not slot.busy:
                self._drop_chain(slot)

    def close(self) -> None:
        self._drain()
        for slot in self.slots:
            self._drop_chain(slot)
        if self._batch is not None:
            self._lc.llama_batch_free(self._batch)
            self._batch = None

    # --- inside ----------------------------------------------------------------------------------
    def _use_chain(self, slot: Slot, request: Request) -> None:
        """Reuse the slot's chain when settings and place match (attaching anew costs a graph reservation).

        A chain once attached stays a device chain (llama.cpp marks its samplers as running in the
        graph and initialises them once), so a change of place always builds a new one.
        """
        chain = slot.chain
        if chain is not None and chain.spec == request.spec and slot.on_device == request.device:
            chain.reset()
            return
        self._drop_chain(slot)
        slot.chain = Chain(request.spec, self.n_vocab, top_k=self.top_k if request.device else None)
        if request.device:
            # False where llama.cpp refuses (tensor split mode): the chain, untouched, then runs on the host
            slot.on_device = attach(self.ctx, slot.seq_id, slot.chain)

    def _drop_chain(self, slot: Slot) -> None:
        if slot.on_device:
            attach(self.ctx, slot.seq_id, None)
            slot.on_device = False
        if slot.chain is not None:
            slot.chain.close()
            slot.chain = None

    def _submit(self, slots: list[Slot]) -> None:
        """Queue the decode of each slot's pending token (one batch); `_collect` draws what it gives."""
        self._fill([(s, s.next_token, True) for s in slots])
        self._decode()
        for slot in slots:
            slot.cached.append(slot.next_token)
        self._in_flight = slots

    def _collect(self) -> list[tuple[Slot, int]]:
        """Wait for the batch in flight and draw each slot's next token; a slot finished meanwhile draws nothing.

        One wait for the device with the GIL released, then each device chain's draw keeping it (`Chain.take`)."""
        slots, self._in_flight = self._in_flight or [], None
        if not slots:
            return []
        self._lc.llama_synchronize(self.ctx)
        return [(slot, _chain(slot).take(self.ctx, i) if slot.on_device else _chain(slot).sample(self.ctx, i))
                for i, slot in enumerate(slots) if slot.busy]

    def _take_drawn(self) -> list[tuple[Slot, int]]:
        drawn, self._drawn = self._drawn, None
        if drawn:
            return drawn
        if self._in_flight is None:
            running = [s for s in self.slots if s.busy]
            if not running:
                return []
            self._submit(running)
        return self._collect()

    def _drain(self) -> None:
        """Draw the batch in flight now (kept for the next `step`), before anything else touches the context."""
        if self._in_flight is not None:
            self._drawn = (self._drawn or []) + self._collect()

    def _ends(self, slot: Slot, token: int) -> bool:
        """Whether `token` ends the slot's reply whatever its text says: end of generation, or the budget."""
        return self._is_eog(token) or slot.generated + 1 >= slot.budget

    def _is_eog(self, token: int) -> bool:
        eog = self._eog.get(token)
        if eog is None:
            eog = self._eog[token] = bool(self._lc.llama_vocab_is_eog(self.vocab, token))
        return eog

    def _accept(self, slot: Slot, token: int) -> Tick:
        slot.next_token = token
        if self._is_eog(token):
            return self.finish(slot, "stop")
        slot.generated += 1
        stream = slot.stream
        assert stream is not None  # a busy slot has one
        text = stream.push(token)
        if stream.stopped:
            return Tick(text + self.finish(slot, "stop").text, slot.generated, "stop")
        if slot.generated >= slot.budget:
            return Tick(text + self.finish(slot, "length").text, slot.generated, "length")
        return Tick(text, slot.generated)

    def _fill(self, entries: list[tuple[Slot, int, bool]]) -> None:
        b = self._batch
        pos: dict[int, int] = {}
        for i, (slot, token, output) in enumerate(entries):
            p = pos.get(slot.seq_id, len(slot.cached))
            pos[slot.seq_id] = p + 1
            b.token[i] = token
            b.pos[i] = p
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = slot.seq_id
            b.logits[i] = output
        b.n_tokens = len(entries)

    def _decode(self) -> None:
        rc = self._lc.llama_decode(self.ctx, self._batch)
        if rc != 0:
            raise QwenctlError(f"llama_decode failed (code {rc})", hint="the context may be full; try a larger --ctx",
                               code=ExitCode.BACKEND)


def _chain(slot: Slot) -> Chain:
    assert slot.chain is not None  # a started slot has one
    return slot.chain


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Timed:
    """A tick with the clock: what chat, `run -p` and bench turn into GenerationEvents."""

    tick: Tick
    prompt_seconds: float  # request to first token
    generation_seconds: float  # first token to this one


def run_one(engine: Engine, request: Request, slot: Slot | None = None) -> Generator[Timed, None, None]:
    """One reply on one slot, token by token; closing the iterator ends the reply ("interrupted" is the caller's)."""
    slot = slot or engine.slots[0]
    start = time.perf_counter()
    tick = engine.start(slot, request)
    first = time.perf_counter()
    try:
        yield Timed(tick, first - start, 0.0)
        while tick.finish_reason is None:
            (_, tick), = engine.step()
            yield Timed(tick, first - start, time.perf_counter() - first)
    finally:
        if slot.busy:
            engine.finish(slot, "interrupted")


def context_for_slots(llm, n_seq: int, n_ctx_per_seq: int, kv_unified: bool = False):
    """A second llama.cpp context on `llm`'s weights with `n_seq` sequences of `n_ctx_per_seq` each.

    It copies the Llama's own context settings (threads, batch, flash attention, KV types) and
    keeps the KV cache split per sequence (kv_unified off), so every request gets its full window
    (``kv_unified``: one shared cache instead, which benchmarks/sampler_step.py compares).
    One output per sequence per decode keeps every device sampler (penalties included) eligible.
    """
    import llama_cpp as lc

    params = lc.llama_context_params()
    ctypes.pointer(params)[0] = llm.context_params
    params.n_ctx = n_ctx_per_seq * n_seq
    params.n_seq_max = n_seq
    params.kv_unified = kv_unified
    params.n_outputs_max_per_seq = 1
    ctx = lc.llama_init_from_model(llm.model, params)
    if not ctx:
        raise QwenctlError(f"llama.cpp could not create a context for {n_seq} sequences of {n_ctx_per_seq} tokens",
                           hint="lower --parallel or --ctx", code=ExitCode.BACKEND)
    return ctx
