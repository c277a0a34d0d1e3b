"""qwenctl bench vs llama.cpp's own llama-bench: same model, same llama.cpp source, same threads.

    python benchmarks/bench_vs_llama_bench.py --build-from SDIST_DIR [--model M.gguf] [--ngl 99 -fa]

llama-bench is built (once, cached in --build-dir) from the llama.cpp that the installed
llama-cpp-python vendors: the unpacked sdist of the same version (`pip download --no-binary :all:
--no-deps llama-cpp-python==VERSION`). The model defaults to the generated Qwen2.5-0.5B-shape
Q4_K_M. Both tools run as fresh processes, alternating which goes first over --rounds rounds
(a shared machine drifts; interleaving spreads the drift over both). Ratios compare the means of
the per-repetition rates (llama-bench's avg_ts is that mean), the best repetitions (on a machine
shared with other work the best rate is the least disturbed one), and the median over rounds of the
ratio within a round (adjacent runs see similar load). Goal: >= 0.98 for pp and tg.
Prints a table and, with --json-out, writes every sample.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def build_llama_bench(src: Path, build_dir: Path, *, cuda: bool = False, jobs: int | None = None) -> Path:
    """cmake-build only the llama-bench target from llama.cpp's source (a llama-cpp-python sdist or its vendor dir)."""
    llama_src = src / "vendor" / "llama.cpp" if (src / "vendor" / "llama.cpp").is_dir() else src
    binary = build_dir / "bin" / "llama-bench"
    if binary.exists():
        return binary
    # the flags llama-cpp-python's own build uses: Release, shared libraries, no curl
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
             "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF"]
    if cuda:
        flags += ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={os.environ.get('CUDA_ARCH', '90')}"]
    generator = ["-G", "Ninja"] if subprocess.run(["which", "ninja"], capture_output=True).returncode == 0 else []
    subprocess.run(["cmake", "-S", str(llama_src), "-B", str(build_dir), *generator, *flags], check=True)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama-bench", "-j", str(jobs or os.cpu_count())],
                   check=True)
    return binary


def run_llama_bench(binary: Path, model: Path, *, n_prompt: int, n_gen: int, reps: int, threads: int, ngl: int,
                    flash_attn: bool, defaults: bool = False, split_mode: str | None = None) -> dict:
    """llama-bench's pp and tg samples; with `defaults`, no -t/-ngl/-fa: its own choices."""
    settings = [] if defaults else ["-t", str(threads), "-ngl", str(ngl), "-fa", "1" if flash_attn else "0"]
    settings += ["-sm", split_mode] if split_mode else []
    cmd = [str(binary), "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps), *settings, "-o", "json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    pp = next(r for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return {"pp": pp["samples_ts"], "tg": tg["samples_ts"], "build": pp.get("build_commit"), "cmd": " ".join(cmd),
            "n_threads": pp.get("n_threads"), "flash_attn": pp.get("flash_attn"), "n_gpu_layers": pp.get("n_gpu_layers")}


def run_qwenctl(model: Path, *, n_prompt: int, n_gen: int, reps: int, threads: int, ngl: int, flash_attn: bool,
                defaults: bool = False, split_mode: str | None = None) -> dict:
    """qwenctl bench's pp and tg samples; with `defaults`, no -t/-ngl/-fa: what `run` would load the model with."""
    settings = [] if defaults else ["-t", str(threads), "-ngl", str(ngl), "--flash-attn" if flash_attn else "--no-flash-attn"]
    settings += ["--split-mode", split_mode] if split_mode else []
    cmd = [sys.executable, "-m", "qwenctl", "bench", "--model", str(model), "-p", str(n_prompt), "-n", str(n_gen),
           "-r", str(reps), *settings, "--json", "--no-save", "--no-chat"]
    doc = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {"pp": list(doc["pp_tps"]["samples"]), "tg": list(doc["tg_tps"]["samples"]), "cmd": " ".join(cmd[1:]),
            "gpu_bytes": doc.get("gpu_bytes"), "n_gpu_layers": doc.get("n_gpu_layers"), "n_threads": doc.get("n_threads"),
            "flash_attn": doc.get("flash_attn")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-bench", type=Path, help="an existing llama-bench binary")
    ap.add_argument("--build-from", type=Path, help="llama-cpp-python sdist dir to build llama-bench from")
    ap.add_argument("--build-dir", type=Path, default=Path(".bench-cache/llama-bench"))
    ap.add_argument("--cuda", action="store_true", help="build llama-bench with CUDA")
    ap.add_argument("--model", type=Path, help="GGUF to run (default: generated 0.5B-shape Q4_K_M)")
    ap.add_argument("--cache", type=Path, default=Path(".bench-cache/models"), help="where generated models go")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of both tools")
    ap.add_argument("-t", "--threads", type=int, default=None, help="default: physical cores")
    ap.add_argument("-ngl", "--ngl", type=int, default=0)
    ap.add_argument("-fa", "--flash-attn", action="store_true")
    ap.add_argument("-sm", "--split-mode", choices=["none", "layer", "tensor"], help="with several GPUs: both tools split alike")
    ap.add_argument("--defaults", action="store_true",
                    help="give neither tool -t/-ngl/-fa: each tool's own defaults (the issue's goal: qwenctl >= 0.98)")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()

    import llama_cpp
    import psutil

    from qwenctl.testing import models

    threads = args.threads or psutil.cpu_count(logical=False) or 1
    binary = args.llama_bench or (build_llama_bench(args.build_from, args.build_dir, cuda=args.cuda)
                                  if args.build_from else None)
    if binary is None:
        sys.exit("give --llama-bench BINARY or --build-from SDIST_DIR")
    model = args.model or models.shaped_gguf(args.cache, "0.5B", "Q4_K_M")
    kw = dict(n_prompt=args.n_prompt, n_gen=args.n_gen, reps=args.reps, threads=threads, ngl=args.ngl,
              flash_attn=args.flash_attn, defaults=args.defaults, split_mode=args.split_mode)
    samples = {"llama-bench": {"pp": [], "tg": []}, "qwenctl": {"pp": [], "tg": []}}
    runs = []
    for round_no in range(args.rounds):
        order = ["llama-bench", "qwenctl"] if round_no % 2 == 0 else ["qwenctl", "llama-bench"]
        for tool in order:
            t0 = time.time()
            r = run_llama_bench(binary, model, **kw) if tool == "llama-bench" else run_qwenctl(model, **kw)
            r.update(tool=tool, round=round_no, wall_s=round(time.time() - t0, 1))
            runs.append(r)
            for k in ("pp", "tg"):
                samples[tool][k] += r[k]
            print(f"round {round_no + 1} {tool:11s} pp {statistics.mean(r['pp']):9.1f}  tg {statistics.mean(r['tg']):8.1f} tok/s"
                  f"  (threads {r.get('n_threads')}, fa {r.get('flash_attn')})", flush=True)

    summary = {
        "model": str(model), "model_bytes": model.stat().st_size, "llama_cpp_python": llama_cpp.__version__,
        "threads": None if args.defaults else threads, "ngl": None if args.defaults else args.ngl,
        "flash_attn": None if args.defaults else args.flash_attn, "defaults": args.defaults, "n_prompt": args.n_prompt,
        "n_gen": args.n_gen, "reps": args.reps, "rounds": args.rounds,
    }
    settings = "each tool's defaults" if args.defaults else f"{threads} threads, ngl {args.ngl}, fa {int(args.flash_attn)}"
    print(f"\nmodel {model.name} ({model.stat().st_size / 1e6:.0f} MB), llama-cpp-python {llama_cpp.__version__}, "
          f"{settings}; {args.rounds} rounds x {args.reps} reps")
    print(f"{'':6s}{'llama-bench':>14s}{'qwenctl':>12s}{'ratio':>8s}{'best lb':>12s}{'best qc':>12s}{'ratio':>8s}"
          f"{'paired':>8s}")
    for k, label in (("pp", f"pp{args.n_prompt}"), ("tg", f"tg{args.n_gen}")):
        ref, ours = statistics.mean(samples["llama-bench"][k]), statistics.mean(samples["qwenctl"][k])
        best_ref, best_ours = max(samples["llama-bench"][k]), max(samples["qwenctl"][k])
        paired = [statistics.mean(q[k]) / statistics.mean(lb[k]) for q, lb in
                  ((next(r for r in runs if r["round"] == i and r["tool"] == "qwenctl"),
                    next(r for r in runs if r["round"] == i and r["tool"] == "llama-bench")) for i in range(args.rounds))]
        summary[k] = {"llama_bench_mean": ref, "qwenctl_mean": ours, "ratio": ours / ref,
                      "llama_bench_best": best_ref, "qwenctl_best": best_ours, "best_ratio": best_ours / best_ref,
                      "paired_median_ratio": statistics.median(paired),
                      "llama_bench_samples": samples["llama-bench"][k], "qwenctl_samples": samples["qwenctl"][k]}
        print(f"{label:6s}{ref:14.1f}{ours:12.1f}{ours / ref:8.3f}{best_ref:12.1f}{best_ours:12.1f}{best_ours / best_ref:8.3f}"
              f"{statistics.median(paired):8.3f}")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"summary": summary, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
