"""How many instructions llama.cpp's CUDA prompt kernel (MMQ) issues per weight type: the figures behind
speed_model.json `kernel_paths.cuda_mmq_types`.

A prompt batch's quantized products run in MMQ (ggml-cuda/mmq.cuh): each block of 8 warps multiplies a
128-row x 128-token tile, 256 weights deep per pass of its main loop, unpacking the weight blocks into shared
memory, multiplying them on the int8 units (IMMA, or dp4a before Turing) and scaling every partial sum by the
blocks' scales in fp32. The scaling dominates: per pass a Q4_0 warp issues 2,354 instructions on sm_90, of which
128 are IMMA and 1,536 int-to-float conversions and fp32 multiplies. A type with a scale per 16 weights (Q2_K,
Q3_K, Q6_K) or a minimum per block (the K-quants) issues more, and at one block of 8 warps per SM the kernel is
bound by how fast those warps issue, not by the int8 units' peak.

This script compiles the vendored llama.cpp's MMQ instances for the given architectures, disassembles them and
counts the instructions of the main loop (the backward branch with the most IMMA/dp4a instructions) of
``mul_mat_q<type, J=128, no bounds fallback>``, per warp per pass. Needs nvcc and cuobjdump (the PyPI wheels
nvidia-cuda-nvcc and nvidia-cuda-cuobjdump carry them), not a GPU; cuBLAS's header is stubbed, as MMQ does not
use it.

    python benchmarks/cuda_mmq_instructions.py --llama-cpp vendor/llama.cpp --arch 90 --arch 89
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
from pathlib import Path

from gguf import GGMLQuantizationType

TYPES = ("q4_0", "q5_0", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k")  # the types of Qwen's official GGUF files
MATRIX_OPS = ("IMMA", "IDP")  # the int8 products: tensor-core mma, or dp4a (IDP.4A) on the FP32 lanes (Pascal)

CUBLAS_STUB = """#pragma once
typedef struct cublasContext *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS=0, CUBLAS_STATUS_NOT_INITIALIZED=1, CUBLAS_STATUS_ALLOC_FAILED=3,
  CUBLAS_STATUS_INVALID_VALUE=7, CUBLAS_STATUS_ARCH_MISMATCH=8, CUBLAS_STATUS_MAPPING_ERROR=11,
  CUBLAS_STATUS_EXECUTION_FAILED=13, CUBLAS_STATUS_INTERNAL_ERROR=14, CUBLAS_STATUS_NOT_SUPPORTED=15 } cublasStatus_t;
typedef enum { CUBLAS_TF32_TENSOR_OP_MATH=3 } cublasMath_t;
typedef enum { CUBLAS_COMPUTE_16F=64, CUBLAS_COMPUTE_32F=68 } cublasComputeType_t;
#define CUBLAS_VER_MAJOR 13
#define CUBLAS_VER_MINOR 0
const char* cublasGetStatusString(cublasStatus_t);
cublasStatus_t cublasCreate(cublasHandle_t*);
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t);
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t);
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void*, size_t);
"""


def compile_instance(cuda_dir: Path, ggml_type: str, arch: str, out: Path, stub_dir: Path, nvcc: str) -> Path:
    """One type's MMQ instance as a cubin, with the flags ggml-cuda's CMakeLists uses (-use_fast_math -extended-lambda)."""
    cubin = out / f"{ggml_type}.sm{arch}.cubin"
    if not cubin.exists():
        subprocess.run([nvcc, f"-arch=sm_{arch}", "-cubin", "-O3", "-std=c++17", "-DNDEBUG", "-use_fast_math",
                        "-extended-lambda", f"-I{stub_dir}", f"-I{cuda_dir.parent.parent / 'include'}",
                        f"-I{cuda_dir.parent}", f"-I{cuda_dir}", str(cuda_dir / "template-instances" / f"mmq-instance-{ggml_type}.cu"),
                        "-o", str(cubin)], check=True)
    return cubin


def main_loop(sass: str) -> list[str]:
    """The instructions of the loop (a backward branch's body) with the most int8 products, shortest on a tie."""
    instructions = [(int(m.group(1), 16), m.group(2).strip())
                    for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    best: list[str] = []
    best_products = -1
    for address, text in instructions:
        target = re.search(r"\bBRA\b.*?0x([0-9a-f]+)", text)
        if not target or int(target.group(1), 16) >= address:
            continue
        body = [t for a, t in instructions if int(target.group(1), 16) <= a <= address]
        products = sum(any(op in t for op in MATRIX_OPS) for t in body)
        if products > best_products or (products == best_products and len(body) < len(best)):
            best, best_products = body, products
    return best


def opcode(instruction: str) -> str:
    return re.sub(r"^@!?U?P\w+\s+", "", instruction).split()[0].split(".")[0]


def count(cubin: Path, ggml_type: str, cuobjdump: str) -> tuple[int, collections.Counter]:
    kernel = (f"_Z9mul_mat_qIL9ggml_type{GGMLQuantizationType[ggml_type.upper()].value}ELi128ELb0EL9ggml_prec30EEvPKcPKiS5_S5_PfS6_PKf"
              "5uint3iiiiiS9_S9_iiiS9_S9_iiiS9_")
    sass = subprocess.run([cuobjdump, "-sass", "-fun", kernel, str(cubin)], capture_output=True, text=True, check=True).stdout
    body = main_loop(sass)
    return len(body), collections.Counter(opcode(t) for t in body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-cpp", type=Path, help="the llama.cpp tree to compile (llama-cpp-python's vendor/llama.cpp)")
    ap.add_argument("--arch", action="append", default=[], help="compute capability without the dot: 90, 89, 75, 61")
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--binary", type=Path, help="count in this build instead of compiling (libggml-cuda.so of a CUDA build)")
    ap.add_argument("--out", type=Path, default=None, help="keep the cubins here (default: a temporary folder)")
    ap.add_argument("--nvcc", default="nvcc")
    ap.add_argument("--cuobjdump", default="cuobjdump")
    args = ap.parse_args()
    if (args.llama_cpp is None) == (args.binary is None):
        ap.error("give --llama-cpp (compile) or --binary (count in a build)")
    types = args.types.split(",")
    if args.binary:
        print(f"{args.binary}: instructions per warp per pass of mul_mat_q<type, 128>'s main loop, as built")
        report(types, lambda ggml_type: count(args.binary, ggml_type, args.cuobjdump))
        return
    cuda_dir = args.llama_cpp / "ggml" / "src" / "ggml-cuda"
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp) / "stub"
        stub.mkdir()
        (stub / "cublas_v2.h").write_text(CUBLAS_STUB)
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for arch in args.arch or ["90"]:
            print(f"sm_{arch}: instructions per warp per pass of mul_mat_q<type, 128>'s main loop (128 x 128 x 256 per block of 8 warps)")
            report(types, lambda ggml_type, arch=arch: count(compile_instance(cuda_dir, ggml_type, arch, out, stub, args.nvcc),
                                                             ggml_type, args.cuobjdump))


def report(types: list[str], counted) -> None:
    reference = None
    for ggml_type in types:
        n, ops = counted(ggml_type)
        reference = reference or n
        top = ", ".join(f"{op} {k}" for op, k in ops.most_common(6))
        print(f"  {ggml_type:5s} {n:6d}  x{n / reference:.3f} of {types[0]}   {top}")


if __name__ == "__main__":
    main()
