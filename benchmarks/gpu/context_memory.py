"""What a CUDA context holds on the GPU before and after llama.cpp runs in it, in parts, on the GPU machine.

    python benchmarks/gpu/context_memory.py MODEL.gguf > context.json

Why: qwenctl's CUDA context constant (calibration.json `cuda_context_bytes`, 610 MiB) was fitted on the H100 and held
on the H200, two GPUs of 132 SMs. Part of a context is the local memory the driver reserves for every thread the GPU can
hold at once (per-thread stack x resident threads per SM x SMs), which a GPU with fewer SMs does not need. This
measures the parts through NVML's device-wide used memory, from the CUDA runtime llama.cpp's context shares (the
primary context): the bare context, how the reservation moves with the per-thread stack limit, the stack limit llama.cpp
leaves after a prompt and a few decoded tokens, and what the context holds then.
"""

from __future__ import annotations

import ctypes
import glob
import json
import random
import sys
from pathlib import Path

from qwenctl.backends import LoadOptions, load_backend
from qwenctl.backends import memory as mem

STACK_SIZE, MALLOC_HEAP_SIZE, PRINTF_FIFO_SIZE = 0, 2, 1  # cudaLimit
SM_COUNT, MAX_THREADS_PER_SM = 16, 39  # cudaDeviceAttr
MiB = 2**20


def _cudart() -> ctypes.CDLL:
    for name in ["libcudart.so.12", "libcudart.so.13", "libcudart.so",
                 *sorted(glob.glob("/usr/local/cuda*/lib64/libcudart.so*"))]:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise SystemExit("no libcudart")


def main() -> None:
    cudart = _cudart()
    used = mem.gpu_used_bytes
    out: dict[str, object] = {"before": used()}

    def value(fn, key: int) -> int:
        v = ctypes.c_size_t() if fn is cudart.cudaDeviceGetLimit else ctypes.c_int()
        assert (fn(ctypes.byref(v), key) if fn is cudart.cudaDeviceGetLimit else fn(ctypes.byref(v), key, 0)) == 0
        return v.value

    cudart.cudaFree(ctypes.c_void_p(0))  # makes the primary context
    out["bare_context"] = used()
    out["sms"] = value(cudart.cudaDeviceGetAttribute, SM_COUNT)
    out["max_threads_per_sm"] = value(cudart.cudaDeviceGetAttribute, MAX_THREADS_PER_SM)
    out["limits"] = {name: value(cudart.cudaDeviceGetLimit, key)
                     for name, key in (("stack", STACK_SIZE), ("malloc_heap", MALLOC_HEAP_SIZE), ("printf_fifo", PRINTF_FIFO_SIZE))}
    default_stack = out["limits"]["stack"]
    steps = {}
    for stack in (default_stack, 2048, 4096, 8192, default_stack):
        assert cudart.cudaDeviceSetLimit(STACK_SIZE, ctypes.c_size_t(stack)) == 0
        steps[str(stack)] = used()
    out["stack_steps"] = steps

    session = load_backend("llama.cpp", Path(sys.argv[1]), LoadOptions(n_ctx=8192, n_gpu_layers=-1, flash_attn=True))
    out["loaded"] = used()
    rng = random.Random(0)
    session.prefill([rng.randrange(session.n_vocab) for _ in range(1024)])
    for _ in range(16):
        session.decode_one(rng.randrange(session.n_vocab))
    out["after_work"] = used()
    out["stack_after_work"] = value(cudart.cudaDeviceGetLimit, STACK_SIZE)
    assert cudart.cudaDeviceSetLimit(STACK_SIZE, ctypes.c_size_t(default_stack)) == 0
    out["after_stack_reset"] = used()
    session.close()
    out["closed"] = used()
    print(json.dumps(out, indent=1))
    bare = (out["bare_context"] - out["before"]) / MiB
    per_byte = (steps["8192"] - steps["2048"]) / (8192 - 2048)
    print(f"bare context {bare:.1f} MiB; {per_byte:.0f} bytes reserved per stack byte "
          f"(SMs x threads = {out['sms'] * out['max_threads_per_sm']}); stack after work {out['stack_after_work']}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
