"""Load and speed figures for `qwenctl serve`, over loopback only, with the official openai client.

Two modes, both against one `qwenctl serve --model PATH --port 0` subprocess:

load (default)  K concurrent clients x M chat requests each, for R rounds. Clients alternate
                streamed and plain requests. Per round: requests/s, p50/p95 latency, generated
                tokens/s in total, failed and lost requests (goal 0: a lost one is a stream that
                ended without a finish_reason), and the server's RSS after the round (goal: flat).
single          one client, plain requests as an editor would send them (no logit_bias: in
                llama-cpp-python any logit_bias becomes a Python sampler over the whole vocabulary,
                a cost of its own per token): per trial a 1-token and a --max-tokens reply, streamed
                and plain; decode rate = (N - 1) / (T(N) - T(1)); then the medians. A trial whose
                reply ends before N tokens (a random-weight model samples end-of-text rarely) is
                run again.
                Compare it with `qwenctl bench`'s decode figure for the same file: the gap is
                sampling (Qwen's defaults, see ../shared/NOTES.md), detokenizing, JSON and HTTP.

    python benchmarks/serve_load.py                      # load test on the generated tiny GGUF
    python benchmarks/serve_load.py MODEL.gguf --single  # e.g. the 7B-shape Q4_K_M on a GPU machine
    python benchmarks/serve_load.py DIR --clients 4 --requests 5 --rounds 2 --json
    python benchmarks/serve_load.py MODEL.gguf --single --engine-server   # llama_cpp.server alone, to compare

Without a model path it generates the tiny test GGUF (qwenctl.testing.models) in a cache dir.
Nothing here asserts a speed; it prints figures (and --json prints them as one document).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil


def start_server(model: Path, extra: list[str]) -> tuple[subprocess.Popen, dict]:
    cmd = [sys.executable, "-m", "qwenctl", "serve", "--model", str(model), "--port", "0", "--json", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    env.pop("QWENCTL_API_KEY", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True, env=env)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"qwenctl serve exited with {proc.wait()} before it was ready")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    return proc, json.loads(line)


def start_engine_server(model: Path, n_ctx: int) -> tuple[subprocess.Popen, dict]:
    """llama-cpp-python's own server, without qwenctl's layer, for comparison (GGUF only). Every layer on
    the GPU when there is one and flash attention on, as `qwenctl serve --model` loads it there."""
    import socket

    import openai

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from qwenctl.hardware import detect
    from qwenctl.pipeline import unplanned_load_options

    load = unplanned_load_options(detect(), n_ctx)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--port", str(port), "--n_ctx", str(load.n_ctx),
           "--n_gpu_layers", str(load.n_gpu_layers), "--flash_attn", str(load.flash_attn), "--interrupt_requests", "False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=5)
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited with {proc.returncode} before it was ready")
        try:
            model_id = client.models.list().data[0].id
            break
        except openai.APIConnectionError:
            time.sleep(0.2)
    else:
        raise SystemExit("llama_cpp.server did not answer within 120 s")
    return proc, {"url": url, "model_id": model_id, "backend": "llama.cpp", "n_ctx": load.n_ctx,
                  "engine_server": "llama_cpp.server", "flash_attn": load.flash_attn, "n_gpu_layers": load.n_gpu_layers}


def no_eos(model: Path, backend: str) -> dict:
    """Request fields that keep a random-weight model from stopping early, so every reply is full length."""
    if backend == "llama.cpp":
        return {"logit_bias": {"<|im_end|>": -100, "<|endoftext|>": -100}, "logit_bias_type": "tokens"}
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    ids = [t["id"] for t in tokenizer.get("added_tokens", []) if t["content"] in ("<|im_end|>", "<|endoftext|>")]
    return {"logit_bias": {str(i): -100 for i in ids}}


def partial_utf8_bias(model: Path) -> dict:
    """logit_bias (by token id) banning every GGUF token whose text alone is not valid UTF-8, and end-of-text.

    A random-weight model picks such byte fragments now and then and rarely completes them;
    llama-cpp-python then holds the stream back and re-detokenizes the held tokens at every step,
    so a streamed reply slows down quadratically. Real models complete their characters. The ban
    costs a Python loop over these entries per token (llama-cpp-python's logit-bias processor).
    """
    import llama_cpp

    llm = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    bad = {}
    for i in range(llm.n_vocab()):
        try:
            llm.detokenize([i]).decode("utf-8")
        except UnicodeDecodeError:
            bad[str(i)] = -100
    for name in ("<|im_end|>", "<|endoftext|>"):
        for i in llm.tokenize(name.encode(), add_bos=False, special=True):
            bad[str(i)] = -100
    return bad


def one_request(client, model_id: str, stream: bool, max_tokens: int, extra: dict, i: int) -> dict:
    messages = [{"role": "user", "content": f"Request {i}: write a short note about the sea."}]
    t0 = time.perf_counter()
    try:
        if stream:
            tokens, finish = 0, None
            for chunk in client.chat.completions.create(
                model=model_id, messages=messages, max_tokens=max_tokens, stream=True, extra_body=extra
            ):
                if chunk.choices:
                    tokens += bool(chunk.choices[0].delta.content)
                    finish = chunk.choices[0].finish_reason or finish
        else:
            reply = client.chat.completions.create(model=model_id, messages=messages, max_tokens=max_tokens, extra_body=extra)
            tokens, finish = reply.usage.completion_tokens, reply.choices[0].finish_reason
    except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0, "tokens": 0}
    return {"ok": finish is not None, "lost": finish is None, "seconds": time.perf_counter() - t0, "tokens": tokens}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def load_test(info: dict, pid: int, args, extra: dict) -> list[dict]:
    import openai

    client = openai.OpenAI(base_url=info["url"], api_key="unused", max_retries=0, timeout=600)
    server = psutil.Process(pid)
    rounds = []
    for r in range(args.rounds):
        jobs = [(c, m) for c in range(args.clients) for m in range(args.requests)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(
                pool.map(lambda job: one_request(client, info["model_id"], job[1] % 2 == 1, args.max_tokens, extra, job[0] * 1000 + job[1]), jobs)
            )
        wall = time.perf_counter() - t0
        done = [x for x in results if x["ok"]]
        latencies = [x["seconds"] for x in done] or [0.0]
        rounds.append(
            {
                "round": r + 1,
                "requests": len(results),
                "failed": sum(1 for x in results if not x["ok"] and not x.get("lost")),
                "lost": sum(1 for x in results if x.get("lost")),
                "errors": sorted({x["error"] for x in results if "error" in x})[:3],
                "wall_s": round(wall, 3),
                "requests_per_s": round(len(done) / wall, 2),
                "p50_s": round(percentile(latencies, 0.5), 3),
                "p95_s": round(percentile(latencies, 0.95), 3),
                "tokens_per_s": round(sum(x["tokens"] for x in done) / wall, 1),
                "server_rss_bytes": server.memory_info().rss,
            }
        )
        print_round(rounds[-1], args.json)
    return rounds


def print_round(r: dict, quiet: bool) -> None:
    if quiet:
        return
    print(
        f"round {r['round']}: {r['requests']} requests in {r['wall_s']:.1f} s · {r['requests_per_s']:.2f} req/s · "
        f"p50 {r['p50_s'] * 1000:.0f} ms · p95 {r['p95_s'] * 1000:.0f} ms · {r['tokens_per_s']:.0f} tok/s · "
        f"failed {r['failed']} · lost {r['lost']} · server RSS {r['server_rss_bytes'] / 1e6:.1f} MB"
        + (f" · {r['errors']}" if r["errors"] else ""),
        flush=True,
    )


def reply_seconds(client, model_id: str, max_tokens: int, extra: dict, stream: bool) -> float | None:
    """Wall time of one reply read to its end; None unless it ran to `max_tokens`."""
    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    start = time.perf_counter()
    reply = client.chat.completions.create(model=model_id, messages=messages, max_tokens=max_tokens, stream=stream, extra_body=extra)
    if stream:
        finish = None
        for chunk in reply:
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
    else:
        finish = reply.choices[0].finish_reason
    return time.perf_counter() - start if finish == "length" else None


def single_client(info: dict, args, extra: dict) -> dict:
    """Decode rate as one client sees it: (N - 1) / (T(N tokens) - T(1 token)), streamed and plain.

    Whole replies are timed, not chunk arrival: llama-cpp-python holds streamed text back while it
    is not valid UTF-8 (or could start a stop string) and emits it in bursts. T(1) is the time to
    a first token (prompt, one sampled token, HTTP); the difference is N - 1 decoded and sampled
    tokens. Plain replies are timed too, because llama-cpp-python's streaming path re-detokenizes
    the held-back tokens at every step, which random-weight models (invalid UTF-8 runs) make costly.
    """
    import openai

    client = openai.OpenAI(base_url=info["url"], api_key="unused", max_retries=0, timeout=600)
    n = args.max_tokens
    trials = []
    attempts = 0
    while len(trials) < args.trials and attempts < 3 * (args.trials + 1):
        attempts += 1
        x = {}
        for kind, stream in (("streamed", True), ("plain", False)):
            first = reply_seconds(client, info["model_id"], 1, extra, stream)
            full = reply_seconds(client, info["model_id"], n, extra, stream)
            if first is not None and full is not None:
                x.update({f"{kind}_first_token_s": first, f"{kind}_reply_s": full, f"{kind}_decode_tps": (n - 1) / (full - first)})
        if attempts == 1 or len(x) < 6:  # the first is a warm-up; a short reply is run again
            continue
        trials.append(x)
        t = len(trials)
        if not args.json:
            print(
                f"trial {t}: streamed: first token {x['streamed_first_token_s'] * 1000:.1f} ms, {n} tokens in "
                f"{x['streamed_reply_s']:.3f} s, decode {x['streamed_decode_tps']:.1f} tok/s · plain: {n} tokens in "
                f"{x['plain_reply_s']:.3f} s, decode {x['plain_decode_tps']:.1f} tok/s",
                flush=True,
            )
    medians = {f"median_{k}": round(statistics.median(x[k] for x in trials), 4) for k in (trials[0] if trials else {})}
    return {"trials": trials, "attempts": attempts, **medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", type=Path, help="a .gguf file or MLX folder (default: the generated tiny GGUF)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=10, help="per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=None, help="per reply (default: 32 load, 256 single)")
    parser.add_argument("--single", action="store_true", help="single-client streamed tokens/s instead of the load test")
    parser.add_argument("--trials", type=int, default=5, help="--single: timed trials after one warm-up")
    parser.add_argument(
        "--ban-partial-utf8", action="store_true",
        help="GGUF: ban byte-fragment tokens (see partial_utf8_bias); costs a Python sampler per token",
    )
    parser.add_argument("--serve-arg", action="append", default=[], help="passed on to `qwenctl serve` (repeatable)")
    parser.add_argument(
        "--engine-server", action="store_true",
        help="GGUF: llama-cpp-python's own server instead of `qwenctl serve` (what qwenctl's layer costs)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    args.max_tokens = args.max_tokens or (256 if args.single else 32)

    model = args.model
    if model is None:
        from qwenctl.testing import models

        model = models.tiny_gguf(Path(os.environ.get("QWENCTL_BENCH_CACHE", Path.home() / ".cache" / "qwenctl-bench")))
    proc, info = start_engine_server(model, 4096) if args.engine_server else start_server(model, args.serve_arg)
    try:
        if not args.json:
            print(f"{info['model_id']} ({info['backend']}, n_ctx {info['n_ctx']}) at {info['url']} on {platform.node()}, {psutil.cpu_count()} CPUs", flush=True)
        extra = {} if args.single else no_eos(Path(model), info["backend"])
        if args.ban_partial_utf8 and info["backend"] == "llama.cpp":
            extra = {"logit_bias": partial_utf8_bias(Path(model)), "logit_bias_type": "input_ids"}
            if not args.json:
                print(f"banning {len(extra['logit_bias']) - 2} byte-fragment tokens", flush=True)
        if args.single:
            result = {"mode": "single", **single_client(info, args, extra)}
            if not args.json:
                print(
                    f"median decode: {result['median_streamed_decode_tps']:.1f} tok/s streamed, "
                    f"{result['median_plain_decode_tps']:.1f} tok/s plain; first token (streamed) "
                    f"{result['median_streamed_first_token_s'] * 1000:.1f} ms"
                )
        else:
            rounds = load_test(info, proc.pid, args, extra)
            rss = [r["server_rss_bytes"] for r in rounds]
            result = {"mode": "load", "rounds": rounds, "rss_growth_bytes": rss[-1] - rss[0]}
            if not args.json:
                print(f"server RSS growth from round 1 to {len(rounds)}: {(rss[-1] - rss[0]) / 1e6:+.1f} MB")
    finally:
        proc.terminate()
        code = proc.wait(120)
    result.update(
        server=info, server_exit=code, max_tokens=args.max_tokens, clients=args.clients, requests=args.requests,
        banned_partial_utf8=args.ban_partial_utf8,
    )
    if args.json:
        print(json.dumps(result))
    elif code != 0 and not args.engine_server:  # llama_cpp.server ends by the signal (-15); qwenctl serve with 0
        print(f"server exited with {code}")


if __name__ == "__main__":
    main()
