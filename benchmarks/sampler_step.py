"""What a decode step costs with each sampler chain on the device, for 1 and 16 sequences (issue 13).

The mean ``Engine.step()`` (one batch: every sequence's next token decoded and sampled) over
--steps steps, after a warm-up, for these chains attached to every sequence:

  none                 plain decode: no sampler attached (the logits come back; the "draw" is a constant token)
  qwen                 Qwen's chain as qwenctl runs it: top-k 84 on the device, then on the host over those
                       candidates penalties > top-k 20 > top-p 0.8 > temp 0.7 > dist (sampling.ChainSpec.narrow);
                       from 4 sequences on, one two-level top-k over every sequence's logits (backends.batched_top_k)
  qwen, top-k per seq  the same with llama.cpp's own top-k sampler: a full sort of each sequence's logits
  qwen, all on device  the same chain in one piece, every sampler in the graph (qwenctl before the cut)
  qwen, 2 banned       Qwen's chain with end-of-generation banned by logit bias (-100), as the serve benchmarks ask
  llama top-k alone    llama.cpp's top-k 20 only (its first candidate is the token)
  no top-k             penalties > temp > dist

Every layer on the GPU and flash attention, as `--model PATH` loads on a GPU (a CPU-only build
runs it all on the CPU). It prints ms per step and per sequence-token and where the token was drawn
(sampling.device_report). It asserts nothing.

    python benchmarks/sampler_step.py MODEL.gguf [--seqs 1,16] [--steps 200] [--kv-unified] [--overlap] [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from qwenctl.backends.batched_top_k import BatchedTopK
from qwenctl.backends.generation import Engine, Request, context_for_slots
from qwenctl.backends.sampling import Chain, ChainSpec, attach, device_report

QWEN = ChainSpec(seed=1)  # Qwen's defaults: repeat penalty 1.05, top-k 20, top-p 0.8, temperature 0.7
NO_TOP_K = replace(QWEN, top_k=0, top_p=1.0)


class Bare:
    """A chain of samplers given as they are (top-k alone), or none: what Engine.step needs of a Chain."""

    def __init__(self, spec: ChainSpec, sampler=None, token: int = 0):
        import llama_cpp as lc

        self._lc, self.spec, self.token = lc, spec, token
        self.ptr = None
        self.top_k_note = ""
        if sampler is not None:
            self.ptr = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
            lc.llama_sampler_chain_add(self.ptr, sampler)

    def names(self) -> list[str]:
        lc = self._lc
        return [lc.llama_sampler_name(lc.llama_sampler_chain_get(self.ptr, 0)).decode()] if self.ptr else []

    def reset(self) -> None:
        pass

    def sample(self, ctx, index: int) -> int:
        """The first candidate top-k left on the device; with no sampler, a constant token (no host work)."""
        return self._lc.llama_get_sampled_candidates_ith(ctx, index)[0] if self.ptr else self.token

    take = sample  # what Engine calls for a device chain once the context is synchronised

    def close(self) -> None:
        if self.ptr:
            self._lc.llama_sampler_free(self.ptr)
            self.ptr = None


def chains(n_vocab: int, token: int, banned: tuple[int, ...] = ()) -> dict[str, object]:
    """name -> a factory of one sequence's chain; each gets its own spec, so that Engine never reuses another's."""
    import llama_cpp as lc

    def tag(i: int) -> ChainSpec:
        return replace(QWEN, seed=100 + i)

    shared = BatchedTopK()  # one context at a time measures, so one group serves them all
    out: dict[str, object] = {
        "none": lambda: Bare(tag(0), token=token),
        "qwen": lambda: Chain(tag(1), n_vocab, top_k=shared),
        "qwen, top-k per seq": lambda: Chain(tag(4), n_vocab),
        "qwen, all on device": lambda: Chain(tag(2), n_vocab, cut=False),
        "qwen, 2 banned": lambda: Chain(replace(tag(6), logit_bias=tuple((t, -100.0) for t in banned)), n_vocab, top_k=shared),
        "llama top-k alone": lambda: Bare(tag(3), lc.llama_sampler_init_top_k(20)),
        "no top-k": lambda: Chain(replace(NO_TOP_K, seed=5), n_vocab),
    }
    return out


class _NeverEnds(dict):
    """Engine's end-of-generation cache, answering no: replies never end early (bench ignores EOS, as llama-bench)."""

    def get(self, key, default=None):
        return False


def measure(llm, n_seq: int, steps: int, warmup: int, make, prompt: list[int], kv_unified: bool = False,
            overlap: bool = False) -> dict:
    """Mean Engine.step() of `n_seq` sequences with the chain `make` builds attached to each (`overlap`: the
    next batch queued before the drawn tokens become text, as qwenctl runs a GPU model)."""
    import llama_cpp as lc

    n_ctx = len(prompt) + warmup + steps + 16
    ctx = context_for_slots(llm, n_seq, n_ctx, kv_unified)
    engine = Engine(ctx, llm.model, n_seq, n_ctx, llm.n_batch, overlap=overlap)
    engine._eog = _NeverEnds()
    try:
        for slot in engine.slots:
            chain = make()
            slot.chain = chain  # what Engine._use_chain would build, so that start() keeps it
            slot.on_device = attach(ctx, slot.seq_id, chain) if chain.ptr else False
            engine.start(slot, Request(tuple(prompt), chain.spec, warmup + steps + 8, device=slot.on_device))
        for _ in range(warmup):
            engine.step()
        lc.llama_synchronize(ctx)
        t0 = time.perf_counter()
        for _ in range(steps):
            engine.step()
        lc.llama_synchronize(ctx)
        ms = (time.perf_counter() - t0) * 1000 / steps
        first = engine.slots[0].chain
        if isinstance(first, Bare):
            where = f"{' > '.join(first.names())} on the device, its first candidate taken" if first.ptr else "no sampler"
        else:
            where = device_report(ctx, 0, first).detail
        return {"ms_per_step": ms, "ms_per_token": ms / n_seq, "where": where}
    finally:
        for slot in engine.slots:
            if slot.busy:
                engine.finish(slot)
        engine.detach_all()
        engine.close()
        lc.llama_free(ctx)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--seqs", default="1,16", help="comma-separated sequence counts")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--kv-unified", action="store_true", help="also time 16 sequences in one shared KV cache (kv_unified)")
    ap.add_argument("--overlap", action="store_true", help="also time Qwen's chain with the engine's overlap")
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args()
    from qwenctl.backends import load_backend
    from qwenctl.hardware import detect
    from qwenctl.pipeline import unplanned_load_options

    session = load_backend("llama.cpp", a.model, unplanned_load_options(detect(), 512))
    try:
        prompt = session.chat_prompt([{"role": "user", "content": "Write a long story about a lighthouse keeper."}])
        import llama_cpp as lc

        vocab = lc.llama_model_get_vocab(session.llm.model)
        made = chains(session.n_vocab, prompt[-1], (lc.llama_vocab_eos(vocab), lc.llama_vocab_eot(vocab)))
        rows = {}
        runs = [(int(n), name, False, False) for n in a.seqs.split(",") for name in made]
        if a.kv_unified:
            runs += [(int(n), name, True, False) for n in a.seqs.split(",") if int(n) > 1 for name in made]
        if a.overlap:
            runs += [(int(n), "qwen", False, True) for n in a.seqs.split(",")]
        for n_seq, name, unified, overlap in runs:
            label = name + (", one KV cache" if unified else "") + (", overlapped" if overlap else "")
            rows[f"{n_seq}|{label}"] = {"seqs": n_seq, "chain": label,
                                        **measure(session.llm, n_seq, a.steps, a.warmup, made[name], prompt, unified, overlap)}
            print(f"[samplerstep] {n_seq} x {label}: {rows[f'{n_seq}|{label}']['ms_per_step']:.3f} ms", file=sys.stderr, flush=True)
        doc = {"schema": "sampler-step", "model": a.model.name, "n_gpu_layers": session.n_gpu_layers,
               "flash_attn": session.flash_attn, "steps": a.steps, "warmup": a.warmup, "rows": list(rows.values())}
    finally:
        session.close()
    if a.json_out:
        a.json_out.write_text(json.dumps(doc, indent=1))
    print(f"{a.model.name}: ngl {doc['n_gpu_layers']}, flash attention {doc['flash_attn']}, mean of {a.steps} steps")
    print(f"  {'seqs':>4}  {'chain':24} {'ms/step':>9} {'ms/seq-token':>13}")
    for r in doc["rows"]:
        print(f"  {r['seqs']:>4}  {r['chain']:24} {r['ms_per_step']:9.3f} {r['ms_per_token']:13.3f}")
    seen = {r["where"] for r in doc["rows"]}
    for where in sorted(seen):
        print(f"  {where}")


if __name__ == "__main__":
    main()
