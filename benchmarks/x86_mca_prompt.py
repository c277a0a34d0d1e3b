"""How much slower a Haswell or Broadwell core runs llama.cpp's AVX2 prompt kernels than a Skylake-family core, per
weight type: the `avx2-haswell` class of `kernel_paths.cpu_x86_types` in qwenctl/data/speed_model.json.

    python benchmarks/x86_mca_prompt.py LLAMA_CPP_DIR [CPU ...]    (default CPUs: skylake haswell)

LLAMA_CPP_DIR is a llama.cpp source tree (the one llama-cpp-python vendors: vendor/llama.cpp of its sdist). The
script compiles the x86 kernels a prompt batch runs on an AVX2 build (the flags of benchmarks/x86_prompt_types.py's
avx2 build) to assembly with the system C compiler, takes each kernel's innermost loops that multiply (vpmaddubsw /
vpmaddwd, no branch inside), and asks `llvm-mca` how many cycles an iteration takes on each CPU's scheduling model
(LLVM's X86Sched*.td: on Haswell and Broadwell both multiplies issue on port 0 only, on Skylake on ports 0 and 1).
Prints, per weight type, the cycles of each loop and the geometric mean of the CPU's cycles over the first one's.

Which kernel a type's prompt runs on AVX2 (the vendored ggml-cpu): Q4_0 and Q4_K repacked (repack.cpp
`ggml_repack_get_optimal_repack_type`: q4_0_8x8, q4_K_8x8), Q8_0 and Q5_0 through llamafile's tinyBLAS
(sgemm.cpp `tinyBLAS_Q0_AVX`, its 4xN tile), the other K-quants row by row (quants.c `ggml_vec_dot_*_q8_K`).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-mbmi2"]
SOURCES = {  # assembly name -> (source under ggml/src/ggml-cpu, compiler, language standard)
    "repack": ("arch/x86/repack.cpp", "g++", "-std=c++17"),
    "sgemm": ("llamafile/sgemm.cpp", "g++", "-std=c++17"),
    "quants": ("arch/x86/quants.c", "gcc", "-std=c11"),
}
KERNELS = {  # weight type -> (assembly, a pattern of the kernel's symbol)
    "Q4_0": ("repack", r"gemm_q4_b32_8x8_q8_0_lut_avx"),
    "Q4_K": ("repack", r"^ggml_gemm_q4_K_8x8_q8_K$"),
    "Q8_0": ("sgemm", r"tinyBLAS_Q0_AVXI10block_q8_0S1_fE7gemm4xNILi2E"),
    "Q5_0": ("sgemm", r"tinyBLAS_Q0_AVXI10block_q5_010block_q8_0fE7gemm4xNILi2E"),
    "Q2_K": ("quants", r"^ggml_vec_dot_q2_K_q8_K$"),
    "Q3_K": ("quants", r"^ggml_vec_dot_q3_K_q8_K$"),
    "Q5_K": ("quants", r"^ggml_vec_dot_q5_K_q8_K$"),
    "Q6_K": ("quants", r"^ggml_vec_dot_q6_K_q8_K$"),
}
JUMP = re.compile(r"^\s+j\w+\s+(\.L\w+)")


def assemble(tree: Path, out: Path) -> dict[str, list[str]]:
    ggml = tree / "ggml"
    listings = {}
    for name, (source, compiler, std) in SOURCES.items():
        target = out / f"{name}.s"
        subprocess.run([compiler, *FLAGS, std, f"-I{ggml / 'include'}", f"-I{ggml / 'src'}", f"-I{ggml / 'src' / 'ggml-cpu'}",
                        "-S", str(ggml / "src" / "ggml-cpu" / source), "-o", str(target)], check=True)
        listings[name] = target.read_text().splitlines()
    return listings


def multiply_loops(lines: list[str], pattern: str) -> list[list[str]]:
    """The branch-free loops (a label up to the jump back to it) of the first symbol matching ``pattern`` that
    multiply bytes: the instructions of one iteration, without the closing jump."""
    start = next(i for i, line in enumerate(lines) if line.endswith(":") and re.search(pattern, line[:-1]))
    symbol = lines[start][:-1]
    end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith(".size") and symbol in lines[i])
    body = lines[start:end]
    labels = {m.group(1): i for i, line in enumerate(body) if (m := re.match(r"^(\.L\w+):", line))}
    loops = []
    for i, line in enumerate(body):
        m = JUMP.match(line)
        if not m or labels.get(m.group(1), i) >= i:
            continue
        iteration = [x for x in body[labels[m.group(1)]:i] if x.startswith("\t") and not x.strip().startswith(".")]
        if any("vpmadd" in x for x in iteration) and not any(JUMP.match(x) for x in iteration):
            loops.append(iteration)
    return loops


def cycles(iteration: list[str], cpu: str, scratch: Path) -> float:
    """llvm-mca's cycles per iteration of the loop body on ``cpu``'s scheduling model."""
    scratch.write_text("\n".join(iteration) + "\n")
    report = subprocess.run(["llvm-mca", f"-mcpu={cpu}", "-iterations=200", str(scratch)],
                            capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Total Cycles:\s+(\d+)", report).group(1)) / 200


def main() -> None:
    tree = Path(sys.argv[1])
    cpus = sys.argv[2:] or ["skylake", "haswell"]
    with tempfile.TemporaryDirectory() as tmp:
        listings = assemble(tree, Path(tmp))
        scratch = Path(tmp) / "loop.s"
        version = subprocess.run(["llvm-mca", "--version"], capture_output=True, text=True).stdout
        llvm = next((line.strip() for line in version.splitlines() if "version" in line), "llvm-mca")
        print(f"llvm-mca cycles per loop iteration ({llvm}); kernels compiled with {' '.join(FLAGS)}")
        for quant, (listing, pattern) in KERNELS.items():
            loops = multiply_loops(listings[listing], pattern)
            per_cpu = {cpu: [cycles(loop, cpu, scratch) for loop in loops] for cpu in cpus}
            ratios = [math.exp(sum(math.log(c / b) for c, b in zip(per_cpu[cpu], per_cpu[cpus[0]])) / len(loops)) for cpu in cpus[1:]]
            cells = "  ".join(f"{cpu} " + "/".join(f"{c:.1f}" for c in per_cpu[cpu]) for cpu in cpus)
            print(f"{quant}: {len(loops)} loop(s)  {cells}  " + "  ".join(f"{cpu}/{cpus[0]} {r:.3f}" for cpu, r in zip(cpus[1:], ratios)))


if __name__ == "__main__":
    main()
