"""Create one llama.cpp context (by default with no layer offloaded), and exit: with a build whose
ggml-alloc.c prints its allocations (run.sh build with ALLOC_TRACE=1), stderr is every tensor ggml's allocator placed
while reserving the compute buffers, with its offset, in graph order.

    python benchmarks/gpu/alloc_trace.py MODEL.gguf N_CTX [fa] [kv=q8_0] [ngl=N] 2> trace.txt
    (fa: with flash attention; kv: the KV cache type, f16 by default; ngl: layers offloaded, 0 by default)

Why: the CUDA compute buffer of such a build holds 7-104 MiB more than its widest step on some shapes (docs/planning.md,
"No layer offloaded, no flash attention, long contexts"); the trace says which tensors sit below the logits.
"""

from __future__ import annotations

import sys

import llama_cpp


def main() -> None:
    model, n_ctx, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    options = dict(flag.split("=", 1) for flag in flags if "=" in flag)
    cache_type = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}[options.get("kv", "f16")]
    llm = llama_cpp.Llama(model, n_gpu_layers=int(options.get("ngl", 0)), n_ctx=n_ctx, n_batch=512, n_ubatch=512,
                          flash_attn="fa" in flags, type_k=cache_type, type_v=cache_type, verbose=True)
    del llm


if __name__ == "__main__":
    main()
