"""Where a generated token's time goes, from the engine to the user, for one GGUF (issue 13).

One command, the same on a CPU and on the H200 (benchmarks/gpu/run.sh's `sampling` stage calls it):

  decode               `qwenctl bench`'s tg: llama_decode one token at a time, no sampling (llama-bench's figure)
  chat, device         bench's chat: Qwen's sampler chain drawn on the device (what chat and serve do)
  chat, host           the same chain over logits copied back to the host (the old path), for the gain
  paired               the three above again, back to back within each trial, and each trial's chat ÷ decode
                       (on a shared machine the load moves between bench's phases by more than sampling costs);
                       its decode runs after the chat's own prompt, at the chat's depth: attending over more
                       cells costs a CPU more than sampling does (0.5B, 2 threads: 15 % at 256 tokens)
  run -p               `qwenctl run --model M -p ... --json` in a subprocess: its reply's generation tok/s
  serve, 1 streamed    `qwenctl serve` (--parallel 1), one openai client, streamed; client-side rate from
                       the first to the last content chunk, so HTTP, JSON and SSE are inside the figure
  serve, K clients     `qwenctl serve --parallel 16`, K = 1, 4, 16 concurrent streamed clients (a process each): total tok/s
                       from the first request to the last token (`_total`) and while every client streams (`_steady`)

Every figure is the median of --trials runs (min beside it) and its ratio to decode. Replies never
end early: generated requests bias end-of-text away (a device sampler, free), and bench ignores EOS.
It prints figures and asserts nothing; --json prints them as one document.

    python benchmarks/sampling.py MODEL.gguf [--n-gen 128] [--trials 5] [--ctx 1024] [--json] [--json-out F]

--json-out rewrites F after every part, so a run cut off by a time limit still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import no_eos, start_server  # the sibling script's server helpers

QUESTION = "Write a long story about a lighthouse keeper and the sea."


def _fig(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def engine_figures(model: Path, n_ctx: int, n_gen: int, trials: int) -> dict:
    """decode, chat with device sampling, chat with host sampling: `qwenctl bench`, in this process."""
    from qwenctl import bench
    from qwenctl.hardware import detect
    from qwenctl.pipeline import unplanned_load_options

    r = bench.bench(model, options=unplanned_load_options(detect(), n_ctx), n_prompt=64, n_gen=n_gen,
                    repetitions=trials)
    out = {"decode": _fig(list(r.tg_tps.samples)), "chat_device": _fig(list(r.chat_tps.samples)),
           "chat_host": _fig(list(r.chat_host_tps.samples)) if r.chat_host_tps else None}
    out["_setup"] = {"n_gpu_layers": r.n_gpu_layers, "flash_attn": r.flash_attn, "n_threads": r.n_threads,
                     "machine": r.machine, "engine": r.engine_version, "sampling": r.sampling}
    return out


def paired_figures(model: Path, n_ctx: int, n_gen: int, trials: int) -> dict:
    """decode, chat (device) and chat (host) taken in turn within each trial, and each trial's chat ÷ decode.

    bench runs all its decode trials, then all its chat trials; on a shared machine the load can change between
    those phases by more than the few per cent sampling costs. Here every trial measures the three back to back,
    so the ratio is taken within a trial and its median is the figure. The decode starts from the chat's prompt
    (prefilled, not timed), so both generate at the same depth and the ratio is what sampling and the chat loop
    cost; bench's tg, like llama-bench's, starts from an empty cache.
    """
    import random

    from qwenctl.backends import SamplingOptions, load_backend
    from qwenctl.hardware import detect
    from qwenctl.pipeline import unplanned_load_options

    session = load_backend("llama.cpp", model, unplanned_load_options(detect(), n_ctx))
    try:
        rng = random.Random(0)
        tokens = [rng.randrange(session.n_vocab) for _ in range(n_gen)]
        messages = [{"role": "user", "content": QUESTION}]
        prompt = session.chat_prompt(messages)

        def decode() -> float:
            session.reset()
            session.prefill(prompt)
            t0 = time.perf_counter()
            for token in tokens:
                session.decode_one(token)
            return n_gen / (time.perf_counter() - t0)

        def chat(on_device: bool, seed: int) -> float:
            session.device_sampling = on_device
            session.reset()
            last = None
            for last in session.chat(messages, SamplingOptions(max_tokens=n_gen, seed=seed)):  # noqa: B007 - the last event sums up
                pass
            assert last is not None
            return last.generation_tps

        decode(), chat(True, 0)  # warm-up
        runs = [(decode(), chat(True, i), chat(False, i)) for i in range(trials)]
    finally:
        session.device_sampling = True
        session.close()
    return {"paired_decode": _fig([d for d, _, _ in runs]), "paired_chat_device": _fig([c for _, c, _ in runs]),
            "paired_chat_host": _fig([h for _, _, h in runs]),
            "_ratios": {"chat_device": _fig([c / d for d, c, _ in runs]), "chat_host": _fig([h / d for d, _, h in runs])}}


def run_p(model: Path, n_ctx: int, trials: int) -> dict:
    """`qwenctl run -p` as a user runs it; the reply's own generation rate (its max_tokens: 512)."""
    rates = []
    for _ in range(trials):
        done = subprocess.run([sys.executable, "-m", "qwenctl", "run", "--model", str(model), "--ctx", str(n_ctx),
                               "-p", QUESTION, "--json"], check=False, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"qwenctl run failed: {done.stderr[-500:]}")
        reply = json.loads(done.stdout)["reply"]
        rates.append(reply["generation_tps"])
    return _fig(rates)


def _stream(client, model_id: str, question: str, n_gen: int, extra: dict) -> tuple[int, float, float, float, list[float]]:
    """(generated tokens, request start, first content chunk, last content chunk, every content chunk's time) of one
    streamed reply.

    Tokens are the server's count (usage), not chunks: a random-weight model emits byte fragments
    that show no text until their character completes."""
    t0 = time.perf_counter()
    chunks: list[float] = []
    n = 0
    for chunk in client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": question}],
                                                max_tokens=n_gen, stream=True, extra_body=extra,
                                                stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            chunks.append(time.perf_counter())
        if chunk.usage:
            n = chunk.usage.completion_tokens
    first, last = (chunks[0], chunks[-1]) if chunks else (0.0, 0.0)
    return n, t0, first, last, chunks


def steady_total(results: list[tuple[int, float, float, float, list[float]]]) -> float | None:
    """Total tokens/s while every client streams: the window from the last client's first chunk to the first
    client's last chunk, each client's chunks in it scaled to tokens (its tokens per chunk), summed, over the window.

    The wall-clock total (first request to last token) also holds the clients' staggered starts, the prompts
    admitted one after another before the batch is full, each reply's first token and the tail where early
    finishers have left; this one is the rate the server keeps up. None where the windows do not overlap."""
    lo, hi = max(r[2] for r in results), min(r[3] for r in results)
    if hi <= lo:
        return None
    tokens = sum(r[0] / len(r[4]) * sum(1 for t in r[4] if lo <= t <= hi) for r in results if r[4])
    return tokens / (hi - lo)


def _server(model: Path, n_ctx: int, parallel: int):
    import openai

    proc, info = start_server(model, ["--ctx", str(n_ctx), "--parallel", str(parallel)])
    client = openai.OpenAI(base_url=info["url"], api_key="unused", max_retries=0, timeout=600)
    return proc, info, client


def serve_single(model: Path, n_ctx: int, n_gen: int, trials: int) -> dict:
    proc, info, client = _server(model, n_ctx, 1)
    extra = no_eos(model, "llama.cpp")
    try:
        _stream(client, info["model_id"], QUESTION, 8, extra)  # warm-up
        rates = []
        for _ in range(trials):
            n, _, first, last, _ = _stream(client, info["model_id"], QUESTION, n_gen, extra)
            rates.append((n - 1) / (last - first))
    finally:
        proc.terminate()
        proc.wait(60)
    return _fig(rates)


_client = None  # a client process's openai client (serve_concurrent's pool)


def _client_init(url: str) -> None:
    global _client
    import openai

    _client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)


def _client_stream(job: tuple) -> tuple[int, float, float, float, list[float]]:
    model_id, question, n_gen, extra = job
    return _stream(_client, model_id, question, n_gen, extra)


def _client_warm(job: tuple) -> None:
    """A short reply, then a pause: every pool process is busy at once, so the pool has started them all."""
    _client_stream(job)
    time.sleep(0.5)


def serve_concurrent(model: Path, n_ctx: int, n_gen: int, trials: int, clients=(1, 4, 16)) -> dict:
    """Total tokens/s of K clients streaming at once from one `serve --parallel 16`: from the first request to the
    last token (`serve_K_clients_total`) and while all K stream (`serve_K_clients_steady`, `steady_total`).

    Each client is a process of its own: 16 openai clients as threads of one process share its GIL, and parsing
    ~3,000 chunks a second in Python would then bound the figure instead of the server. Times are
    time.perf_counter, which is CLOCK_MONOTONIC on Linux, one clock for every process."""
    proc, info, client = _server(model, n_ctx, max(clients))
    extra = no_eos(model, "llama.cpp")
    out = {}
    try:
        _stream(client, info["model_id"], QUESTION, 8, extra)
        with ProcessPoolExecutor(max(clients), initializer=_client_init, initargs=(info["url"],)) as pool:
            # every process started and its client built before anything is timed
            list(pool.map(_client_warm, [(info["model_id"], QUESTION, 1, extra)] * max(clients)))
            for k in clients:
                totals, steady = [], []
                # one untimed round first: a slot's first request attaches its sampler chain (a graph reservation)
                for round_ in range(1 + max(1, trials // 2)):
                    jobs = [(info["model_id"], f"{QUESTION} ({i})", n_gen, extra) for i in range(k)]
                    results = list(pool.map(_client_stream, jobs))
                    start = min(r[1] for r in results)
                    end = max(r[3] for r in results)
                    if round_:
                        totals.append(sum(r[0] for r in results) / (end - start))
                        rate = steady_total(results)
                        if rate is not None:
                            steady.append(rate)
                out[f"serve_{k}_clients_total"] = _fig(totals)
                if steady:
                    out[f"serve_{k}_clients_steady"] = _fig(steady)
    finally:
        proc.terminate()
        proc.wait(60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--n-gen", type=int, default=128)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--run-trials", type=int, help="trials of `run -p` (512 tokens each; default --trials)")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: paired,run,serve,concurrent")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--json-out", type=Path, help="also write the document here after every part")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    t0 = time.perf_counter()
    ratios: dict = {}
    figures = engine_figures(a.model, a.ctx, a.n_gen, a.trials)
    setup = figures.pop("_setup")

    def document() -> dict:
        decode = figures["decode"]["median"]
        return {"schema": "sampling-bench", "model": a.model.name, "n_gen": a.n_gen, "trials": a.trials, "n_ctx": a.ctx,
                **setup, "seconds": round(time.perf_counter() - t0, 1),
                "figures": {k: {**v, "vs_decode": v["median"] / decode} for k, v in figures.items() if v},
                "paired_ratios": ratios}

    def save(part: str) -> None:
        print(f"[sampling] {part} done after {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if a.json_out:
            a.json_out.write_text(json.dumps(document(), indent=1))

    save("engine")
    if "paired" not in skip:
        paired = paired_figures(a.model, a.ctx, a.n_gen, a.trials)
        ratios = paired.pop("_ratios")
        figures.update(paired)
        save("paired")
    if "run" not in skip:
        figures["run_p"] = run_p(a.model, a.ctx, a.run_trials or a.trials)
        save("run -p")
    if "serve" not in skip:
        figures["serve_1_streamed"] = serve_single(a.model, a.ctx, a.n_gen, a.trials)
        save("serve")
    if "concurrent" not in skip:
        figures.update(serve_concurrent(a.model, a.ctx, a.n_gen, a.trials))
        save("concurrent")
    doc = document()
    if a.json:
        print(json.dumps(doc, indent=1))
        return
    print(f"{a.model.name}: {setup['machine']}, llama-cpp-python {setup['engine']}, ngl {setup['n_gpu_layers']}, "
          f"flash attention {setup['flash_attn']}, {a.n_gen} tokens, {a.trials} trials")
    print(f"  {setup['sampling']}")
    print(f"  {'':28} {'median tok/s':>13} {'min':>9} {'÷ decode':>9}")
    for name, v in doc["figures"].items():
        print(f"  {name:28} {v['median']:13,.1f} {v['min']:9,.1f} {v['vs_decode']:9.2f}")
    for name, v in ratios.items():
        print(f"  {name} ÷ decode within each trial: median {v['median']:.3f} (min {v['min']:.3f}, max {v['max']:.3f})")


if __name__ == "__main__":
    main()
