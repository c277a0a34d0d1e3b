"""How many instructions llama.cpp's CUDA decode kernel (MMVQ) issues per weight on a GPU without dp4a: the figures
behind speed_model.json `kernel_paths.cuda_mmvq_emulated_dp4a`.

A decoded token's quantized weights stream through mul_mat_vec_q (ggml-cuda/mmvq.cu), which multiplies each block of
weights with the token's int8 activations through ggml_cuda_dp4a: one IDP.4A instruction (four int8 products and their
sum) from compute capability 6.1 on, but below it (Maxwell 5.x, the P100's 6.0) a C fallback in ggml-cuda/common.cuh
that sign-extends each operand's four bytes and multiplies and adds them one by one. Where the fitted decode constants
were measured (every fitting GPU has dp4a) the kernel's instructions are part of what an SM keeps in flight; without
dp4a the fallback multiplies the instructions per weight by about two, and an SM's lanes, not the memory, set the pace.

This script counts (1) the instructions of mul_mat_vec_q<type, 1 column, no fusion>'s main loop per ggml type, compiled
for sm_75 (the oldest architecture nvcc 13 builds; its loop is the one sm_61 runs, with IDP.4A for ggml_cuda_dp4a), and
(2) what the fallback costs in place of one IDP.4A, measured on a kernel of N fallback calls compiled for sm_50 and
sm_60 (clang's CUDA front end, since nvcc 13 no longer targets them, and ptxas of CUDA 12): the growth of the kernel's
code per call, at 3 instructions per 32 bytes (Maxwell and Pascal bundle a control word with every three). An
operand that is the constant 0x01010101 (the K-quants' sums of the activations) folds its multiplies away.

    python benchmarks/cuda_mmvq_instructions.py --llama-cpp vendor/llama.cpp \\
        --clang "python -m ziglang clang" --ptxas /path/to/cuda-12/ptxas

Needs nvcc 13 and cuobjdump for (1) (the PyPI wheels nvidia-cuda-nvcc and nvidia-cuda-cuobjdump, with
nvidia-cuda-nvdisasm), and for (2) a clang with the NVPTX target (the ziglang wheel's) and ptxas from CUDA 12
(nvidia-cuda-nvcc-cu12); without (2) the figures measured 2026-12-05 are used, and said so.
"""

from __future__ import annotations

import argparse
import collections
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

from cuda_mmq_instructions import CUBLAS_STUB, main_loop, opcode
from gguf import GGMLQuantizationType

TYPES = ("q4_0", "q5_0", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k")
# the dp4a calls of each type's vec_dot (ggml-cuda/vecdotq.cuh, *_impl_vmmq / *_impl) that multiply its weights, and
# those that sum the activations against a minimum per block: Q4_K and Q5_K by the constant 0x01010101 (`dot2`),
# Q2_K by its 4-bit minimum replicated into four bytes (`m`, a variable: the full fallback)
SUM_CALLS = {"q2_k": ("variable", 1), "q4_k": ("constant", 1), "q5_k": ("constant", 1)}  # per weight dp4a
MEASURED = {"variable": 13, "constant": 7}  # instructions in place of one IDP.4A, sm_50 / 52 / 60 alike (2026-12-05)

FALLBACK_KERNEL = r"""
#define __device__ __attribute__((device))
#define __global__ __attribute__((global))
typedef signed char int8_t;
static __device__ __attribute__((always_inline)) int dp4a_fallback(const int a, const int b, int c) {
    const int8_t * a8 = (const int8_t *) &a;   // ggml-cuda/common.cuh ggml_cuda_dp4a below GGML_CUDA_CC_DP4A
    const int8_t * b8 = (const int8_t *) &b;
    return c + a8[0]*b8[0] + a8[1]*b8[1] + a8[2]*b8[2] + a8[3]*b8[3];
}
extern "C" __global__ void k(const int * __restrict__ x, const int * __restrict__ y, int * __restrict__ out) {
    int acc = 0;
#pragma unroll
    for (int i = 0; i < N; ++i) acc = dp4a_fallback(A, y[i], acc);
    out[0] = acc;
}
"""


def loop_counts(cubin: Path, ggml_type: str, cuobjdump: str) -> tuple[int, int, collections.Counter]:
    """(instructions, IDP.4A, opcodes) of mul_mat_vec_q<type, 1, no fusion>'s main loop in a cubin."""
    number = GGMLQuantizationType[ggml_type.upper()].value
    kernels = subprocess.run([cuobjdump, "-symbols", str(cubin)], capture_output=True, text=True, check=True).stdout
    name = re.search(rf"\b(_Z13mul_mat_vec_qIL9ggml_type{number}ELi1ELb0ELb0ELb0EE\w+)", kernels)
    if not name:
        raise SystemExit(f"no mul_mat_vec_q<{ggml_type}, 1> in {cubin}")
    sass = subprocess.run([cuobjdump, "-sass", "-fun", name.group(1), str(cubin)], capture_output=True, text=True,
                          check=True).stdout
    body = main_loop(sass)
    ops = collections.Counter(opcode(t) for t in body)
    return len(body), sum(n for op, n in ops.items() if op.startswith("IDP")), ops


def fallback_cost(clang: str, ptxas: str, arch: str, operand: str, tmp: Path) -> float:
    """Instructions one ggml_cuda_dp4a fallback adds to a kernel for `arch`, besides the loads of its operands."""
    source = tmp / "fallback.cu"
    source.write_text(FALLBACK_KERNEL)
    sizes = []
    for n in (0, 32):
        a = "x[i]" if operand == "variable" else "0x01010101"
        ptx, cubin = tmp / f"f{n}.ptx", tmp / f"f{n}.cubin"
        subprocess.run([*shlex.split(clang), "-x", "cuda", "-nocudainc", "-nocudalib", f"--cuda-gpu-arch=sm_{arch}",
                        "--cuda-device-only", "-O3", "-S", f"-DN={n}", f"-DA={a}", str(source), "-o", str(ptx)],
                       check=True, capture_output=True)
        subprocess.run([ptxas, f"-arch=sm_{arch}", "-O3", str(ptx), "-o", str(cubin)], check=True)
        symbols = subprocess.run(["readelf", "-sW", str(cubin)], capture_output=True, text=True, check=True).stdout
        sizes.append(int(next(line.split()[2] for line in symbols.splitlines() if line.endswith(" k"))))
    loads = 2 if operand == "variable" else 1
    return (sizes[1] - sizes[0]) / 32 / 32 * 3 - loads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-cpp", type=Path, required=True, help="the llama.cpp tree (llama-cpp-python's vendor/llama.cpp)")
    ap.add_argument("--clang", help="a clang with the NVPTX target, as a command ('python -m ziglang clang')")
    ap.add_argument("--ptxas", help="ptxas of CUDA 12 or older (builds sm_50 and sm_60)")
    ap.add_argument("--nvcc", default="nvcc")
    ap.add_argument("--cuobjdump", default="cuobjdump")
    args = ap.parse_args()
    cuda_dir = args.llama_cpp / "ggml" / "src" / "ggml-cuda"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.clang and args.ptxas:
            cost = {}
            for operand in MEASURED:
                by_arch = {arch: fallback_cost(args.clang, args.ptxas, arch, operand, tmp) for arch in ("50", "52", "60")}
                print(f"ggml_cuda_dp4a fallback, {operand} operand: " + ", ".join(f"sm_{a} {n:g}" for a, n in by_arch.items())
                      + " instructions (besides its loads)")
                cost[operand] = max(by_arch.values())
        else:
            cost = dict(MEASURED)
            print(f"ggml_cuda_dp4a fallback: {cost} instructions, as measured 2026-12-05 (give --clang and --ptxas to measure)")
        (tmp / "stub").mkdir()
        (tmp / "stub" / "cublas_v2.h").write_text(CUBLAS_STUB)
        cubin = tmp / "mmvq.sm75.cubin"
        subprocess.run([args.nvcc, "-arch=sm_75", "-cubin", "-O3", "-std=c++17", "-DNDEBUG", "-use_fast_math",
                        "-extended-lambda", f"-I{tmp / 'stub'}", f"-I{cuda_dir.parent.parent / 'include'}",
                        f"-I{cuda_dir.parent}", f"-I{cuda_dir}", str(cuda_dir / "mmvq.cu"), "-o", str(cubin)], check=True)
        print("mul_mat_vec_q<type, 1 column>'s main loop on sm_75 (IDP.4A for dp4a), per thread of a warp:")
        for ggml_type in TYPES:
            n, idp, ops = loop_counts(cubin, ggml_type, args.cuobjdump)
            kind, sums_per_weight_call = SUM_CALLS.get(ggml_type, (None, 0))
            weight_calls = idp / (1 + sums_per_weight_call)
            weights = 4 * weight_calls
            extra = weight_calls * (cost["variable"] - 1) + (idp - weight_calls) * (cost[kind] - 1 if kind else 0)
            top = ", ".join(f"{op} {k}" for op, k in ops.most_common(5))
            print(f"  {ggml_type:5s} {n:4d} instructions, {idp:2d} IDP.4A, {weights:3.0f} weights: {n / weights:5.2f} per weight"
                  f" with dp4a, {(n + extra) / weights:5.2f} without   ({top})")


if __name__ == "__main__":
    main()
