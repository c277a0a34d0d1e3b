"""The main machine's side of the RPC tests, run as a subprocess (registering RPC devices cannot be undone, so
the test process itself never attaches): attach workers, load a GGUF with the last layers on them, generate greedily.

    python tests/rpc_main.py MODEL [--workers A,B] [--ngl N] [--tokens N] [--sleep S] [--hold] [--serve-mode] [--verbose]

Prints one JSON line {"tokens": [...], "logits": [...]} (the last step's logits), or with --sleep a line per
token so a test can kill a worker mid-generation. --hold waits for a line on stdin before exiting (the test
measures the workers' memory meanwhile). --serve-mode installs rpc.on_worker_lost as serve would: the lost
worker is reported by the handler and the process goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--workers", default="")
    p.add_argument("--ngl", type=int, default=0)
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--hold", action="store_true")
    p.add_argument("--serve-mode", action="store_true")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()

    import llama_cpp

    from qwenctl.backends import llama_flash as flash
    from qwenctl.backends import rpc

    workers = [w for w in a.workers.split(",") if w]
    lost = threading.Event()
    if a.serve_mode:
        rpc.on_worker_lost(lambda error: (print(f"engine dead: {error.one_line()}", flush=True), lost.set()))
    if workers:
        print("attached", " ".join(rpc.attach(workers)), flush=True)
    with flash.flash_attn_mode(None):  # llama.cpp's auto rule, as qwenctl's load does by default
        llm = llama_cpp.Llama(a.model, n_gpu_layers=a.ngl, split_mode=llama_cpp.LLAMA_SPLIT_MODE_LAYER,
                              tensor_split=[1.0] * len(workers) if workers else None, n_ctx=2048, n_batch=512,
                              n_threads=1, n_threads_batch=1, seed=0, verbose=a.verbose, logits_all=False)
    prompt = llm.tokenize(b"Hello, world. The quick brown fox", add_bos=False)

    def generate() -> None:
        tokens = []
        for token in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
            tokens.append(token)
            if a.sleep:
                print("token", len(tokens), flush=True)
                time.sleep(a.sleep)
            if len(tokens) >= a.tokens:
                break
        last = llama_cpp.llama_get_logits_ith(llm.ctx, -1)  # the last decoded token's logits
        logits = [float(last[i]) for i in range(64)]
        print(json.dumps({"tokens": tokens, "logits": logits}), flush=True)

    if a.serve_mode:  # the generation thread is lost with the worker; the process answers on
        threading.Thread(target=generate, daemon=True).start()
        lost.wait(120)
        print("still serving", flush=True)
        os._exit(0)
    generate()
    if a.hold:
        print("holding", flush=True)
        sys.stdin.readline()


if __name__ == "__main__":
    main()
