#!/usr/bin/env bash
# The CUDA measurements of docs/benchmarks.md, on the GPU machine (device tool, no network).
#
#   bash benchmarks/gpu/run.sh [STAGE ...]   (the stages: `known`, near the end; no argument: build models run)
#
# Each device call may run 600 s and a fresh machine's build takes ~345 s: call `build models`, then
# `run`, then `extras` (the warm machine keeps the build and the models between calls).
#
# Needs, carried beside the repository: .sdist/llama_cpp_python-<version>/ (the unpacked, stripped sdist of
# the llama-cpp-python the project uses) and .whl/ (wheels of the pure-Python packages the image lacks).
# Every stage skips what an earlier call on the same (warm) machine already did, so the stages can be
# split over calls: `build models` in one, `run` in the next.
#
# cpu:    the host CPU alone: llama.cpp built natively with and without AMX, llama-bench with and without repacking
#         on every model (CPU_MODELS="SIZE:QUANT ..." generates more), and `qwenctl detect --measure`.
# build:  ONE CUDA build of the sdist's vendored llama.cpp (libllama + llama-bench), used by both
#         llama-bench and qwenctl (llama-cpp-python's Python package from the same sdist, pointed at the
#         libraries with LLAMA_CPP_LIB_PATH): the same llama.cpp by construction, and one compile instead of two.
# models: shape-faithful random-weight Qwen2.5 7B Q4_K_M + Q8_0 and 0.5B Q4_K_M (benchmarks/gpu/make_models.py).
# Environment: QWENCTL_GPU_WORK (work dir, default /root/qwenctl-gpu), BANDWIDTH (roofline; default: the GPU's own, which qwenctl bench reads from NVML),
# MODELS ("7B:Q4_K_M 7B:Q8_0 0.5B:Q4_K_M"), BENCH_P / BENCH_N (512 / 128), CCCL_DIR (build against a newer CCCL than the
# toolkit's); for a CPU dry run elsewhere: GGML_CUDA=OFF, LLAMA_BUILD_DIR=an existing build.
# run:    pytest -m gpu, `qwenctl bench --json` per model (flash attention off and on), llama-bench on the
#         same models, and bench_vs_llama_bench.py; everything lands in $OUT (summary.md, results.json, log.txt).
set -uo pipefail

ROOT=$(pwd)
WORK=${QWENCTL_GPU_WORK:-/root/qwenctl-gpu}
OUT=${OUT:-$WORK/out}
BW_ARG=()   # qwenctl bench takes the roofline from NVML unless BANDWIDTH says otherwise (e.g. 3.35TB/s)
[ -n "${BANDWIDTH:-}" ] && BW_ARG=(--bandwidth "$BANDWIDTH")
JOBS=${JOBS:-$(nproc)}
P=${BENCH_P:-512} N=${BENCH_N:-128}  # prompt and generated tokens per run
mkdir -p "$WORK/results" "$OUT"
LOG="$OUT/log.txt"
exec > >(tee -a "$LOG") 2>&1

SDIST=$(ls -d "$ROOT"/.sdist/llama_cpp_python-* 2>/dev/null | head -1)
[ -n "$SDIST" ] || { echo "no .sdist/llama_cpp_python-*: carry the unpacked sdist"; exit 2; }
PY=${PYTHON:-python3}
BUILD=${LLAMA_BUILD_DIR:-$WORK/llama-cuda}
MODELS=${MODELS:-7B:Q4_K_M 7B:Q8_0 0.5B:Q4_K_M}
export PYTHONPATH="$ROOT:$SDIST:$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
export LLAMA_CPP_LIB_PATH="$BUILD/bin"
export PYTHONUNBUFFERED=1 XDG_DATA_HOME="$WORK/xdg" HF_HUB_OFFLINE=1
stamp() { echo "== $(date +%T) $*"; }

install_wheels() {
  local wheels=${WHEEL_DIR:-$ROOT/.whl}
  if [ ! -f "$WORK/site/.done" ] && ls "$wheels"/*.whl >/dev/null 2>&1; then
    stamp "installing carried wheels"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$wheels"/*.whl \
      && touch "$WORK/site/.done" || return 1
  fi
}

stage_build() {
  install_wheels || return 1
  if [ ! -x "$BUILD/bin/llama-bench" ] || [ ! -f "$BUILD/bin/libllama.so" ]; then
    stamp "building llama.cpp $(basename "$SDIST") with CUDA ($JOBS jobs)"
    local t0=$SECONDS
    # CCCL_DIR: a CCCL newer than the toolkit's (unpacked cub/, thrust/, libcudacxx/include/), ahead of it on the
    # include path: llama.cpp's CUDA top-k uses CUB's DeviceTopK from CCCL 3.2 on, a full argsort before
    # POOL_TRACE=1: ggml's CUDA pool printf()s every allocation and free (DEBUG_CUDA_MALLOC), for stage pooltrace
    local cuda_flags=""
    [ -n "${CCCL_DIR:-}" ] && cuda_flags="-I$CCCL_DIR/cub -I$CCCL_DIR/thrust -I$CCCL_DIR/libcudacxx/include"
    [ -n "${POOL_TRACE:-}" ] && cuda_flags="$cuda_flags -DDEBUG_CUDA_MALLOC"
    # ALLOC_TRACE=1: ggml-alloc.c prints every placement and release, with its allocator, for stage alloctrace
    [ -n "${ALLOC_TRACE:-}" ] && sed -i -e 's|^#define AT_PRINTF(...)$|#define AT_PRINTF(...) fprintf(stderr, __VA_ARGS__)|' \
      -e 's|AT_PRINTF("%s: allocating %s|AT_PRINTF("%p: allocating %s|; s|__func__, tensor->name, size);|(void *) alloc, tensor->name, size);|' \
      -e 's|AT_PRINTF("%s: freeing %s|AT_PRINTF("%p: freeing %s|; s|        __func__, node->name, hn->addr.chunk|        (void *) alloc, node->name, hn->addr.chunk|' \
      "$SDIST/vendor/llama.cpp/ggml/src/ggml-alloc.c"
    local extra=()
    [ -n "$cuda_flags" ] && extra=("-DCMAKE_CUDA_FLAGS=$cuda_flags")
    # BUILD_TESTS=1: test-backend-ops too, for stage kernels
    local targets=(llama llama-bench ggml-rpc-server) tests=OFF
    [ -n "${BUILD_TESTS:-}" ] && { tests=ON; targets+=(test-backend-ops); }
    cmake -S "$SDIST/vendor/llama.cpp" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON "${extra[@]}" \
      -DGGML_CUDA=${GGML_CUDA:-ON} -DGGML_RPC=ON -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH:-90} -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=$tests \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$WORK/cmake.log" 2>&1 || { tail -30 "$WORK/cmake.log"; return 1; }
    cmake --build "$BUILD" --target "${targets[@]}" -j "$JOBS" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; return 1; }
    stamp "built in $((SECONDS - t0)) s"
  fi
  $PY -c "import llama_cpp, sys; ok = llama_cpp.llama_supports_gpu_offload(); print('llama_cpp', llama_cpp.__version__, 'from', llama_cpp.__file__, 'gpu offload', ok); sys.exit(0 if ok or '${GGML_CUDA:-ON}' == 'OFF' else 1)"
}

stage_models() {
  stamp "generating models"
  $PY benchmarks/gpu/make_models.py "$WORK/models" $MODELS || return 1
  ls -l "$WORK/models"
}

stage_run() {
  local R="$WORK/results" m name fa
  rm -f "$R"/*.json
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv | tee "$R/gpu.txt" || true
  stamp "pytest -m gpu"
  # only the gpu test files: the others need packages the GPU image lacks (pexpect, ...) and fail collection.
  # No plugin autoload: the image's jaxtyping pytest plugin, once loaded, makes the next CUDA model load segfault.
  PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 QWENCTL_GPU_MODELS="$WORK/models" $PY -m pytest -q -m gpu tests/test_backend_gpu.py tests/test_hardware_gpu.py -p no:randomly 2>&1 | tail -15
  for m in "$WORK"/models/*.gguf; do
    [ -f "$m" ] || continue
    name=$(basename "$m" .gguf)
    for fa in 0 1; do
      stamp "qwenctl bench $name fa=$fa"
      $PY -m qwenctl bench --model "$m" -p $P -n $N -ngl -1 "${BW_ARG[@]}" --json \
        $([ $fa = 1 ] && echo --flash-attn || echo --no-flash-attn) >"$R/qwenctl-$name-fa$fa.json" || echo "FAILED"
    done
    stamp "llama-bench $name"
    "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa 0,1 -o json >"$R/llama-bench-$name.json" 2>"$R/llama-bench-$name.err" \
      || { echo "FAILED"; tail -5 "$R/llama-bench-$name.err"; }
  done
  for m in "$WORK"/models/qwen2.5-*-Q4_K_M.gguf; do
    [ -f "$m" ] || continue
    stamp "bench_vs_llama_bench $(basename "$m") fa=1"
    $PY benchmarks/bench_vs_llama_bench.py --llama-bench "$BUILD/bin/llama-bench" --model "$m" -p $P -n $N -ngl 99 -fa --rounds 2 \
      --json-out "$R/vs-$(basename "$m" .gguf).json" || echo "FAILED"
  done
  $PY benchmarks/gpu/summarize.py "$R" "$OUT/summary.md" "$OUT/results.json"
}

# facts: what qwenctl sees on this machine (a real NVML snapshot for the test fixtures) and plans for it.
stage_facts() {
  $PY -m qwenctl detect --save-snapshot "$OUT/gpu-machine-snapshot.json"
  # whole to a file, then its head: `plan | head` ends plan with SIGPIPE, which pipefail reports as the stage failing
  $PY -m qwenctl plan --ctx 8192 >"$OUT/plan.txt" && head -20 "$OUT/plan.txt"
}

# extras: `serve` streaming vs bench decode on the 7B Q4_K_M, and memory-estimate accuracy on the GPU.
stage_extras() {
  local m7
  m7=$(ls "$WORK"/models/qwen2.5-7b-*-Q4_K_M.gguf 2>/dev/null | head -1)
  if [ -n "$m7" ]; then
    stamp "serve: single-client streaming on $(basename "$m7"), and bench's decode of the same file in the same call"
    timeout 90 $PY -m qwenctl bench --model "$m7" -ngl -1 --flash-attn "${BW_ARG[@]}" --json --no-save >"$OUT/serve_bench_7b.json" || echo "FAILED"
    timeout 200 $PY benchmarks/serve_load.py "$m7" --single --max-tokens 256 --json >"$OUT/serve_gpu.json" || echo "FAILED"
    timeout 150 $PY benchmarks/serve_load.py "$m7" --single --ban-partial-utf8 --trials 3 --max-tokens 256 --json >"$OUT/serve_gpu_ban.json" || echo "FAILED"
  fi
  stamp "estimate accuracy (NVML)"
  timeout 280 $PY benchmarks/estimate_accuracy.py --gpu --sizes 0.5B,7B --quants Q4_K_M,Q8_0 --models-dir "$WORK/models" \
    --json-out "$OUT/estimate_gpu.json" || echo "FAILED"
}

# sampling: issue 13's figures per model (SAMPLING_MODELS, default the 7B and 0.5B Q4_K_M; every layer on the GPU and
# flash attention, as `--model PATH` loads on a GPU): decode vs chat with device / host sampling vs `run -p` vs serve
# streamed to one client vs 1/4/16 concurrent clients (benchmarks/sampling.py), one JSON per model in $OUT, then a table.
# About 2-3 minutes a model on the H200 (SAMPLING_TRIALS, SAMPLING_N); each model in its own timeout so one call fits.
stage_sampling() {
  local m name
  for m in ${SAMPLING_MODELS:-$(ls "$WORK"/models/qwen2.5-7b-*-Q4_K_M.gguf "$WORK"/models/qwen2.5-0.5b-*-Q4_K_M.gguf 2>/dev/null)}; do
    [ -f "$m" ] || continue
    name=$(basename "$m" .gguf)
    stamp "sampling $name"
    timeout ${SAMPLING_TIMEOUT:-280} $PY benchmarks/sampling.py "$m" --n-gen ${SAMPLING_N:-256} --trials ${SAMPLING_TRIALS:-5} \
      --ctx 2048 --json-out "$OUT/sampling-$name.json" || echo "FAILED (or cut off) $name"
    $PY - "$OUT/sampling-$name.json" <<'PYEOF' || true
import json, sys
d = json.load(open(sys.argv[1]))
print(d["model"], d["sampling"])
for k, v in d["figures"].items():
    print(f"  {k:28} {v['median']:10,.1f} tok/s (min {v['min']:,.1f})  {v['vs_decode']:.2f} of decode")
PYEOF
  done
}

# samplerstep: what a decode step costs with each sampler chain on the device (benchmarks/sampler_step.py), 1 and 16
# sequences, on the 0.5B and 7B Q4_K_M (SAMPLERSTEP_MODELS), every layer on the GPU with flash attention;
# $OUT/samplerstep-<model>.json.
stage_samplerstep() {
  local m name
  for m in ${SAMPLERSTEP_MODELS:-$(ls "$WORK"/models/qwen2.5-0.5b-*-Q4_K_M.gguf "$WORK"/models/qwen2.5-7b-*-Q4_K_M.gguf 2>/dev/null)}; do
    [ -f "$m" ] || continue
    name=$(basename "$m" .gguf)
    stamp "samplerstep $name"
    timeout ${SAMPLERSTEP_TIMEOUT:-280} $PY benchmarks/sampler_step.py "$m" --seqs 1,16 --steps ${SAMPLERSTEP_STEPS:-200} \
      --kv-unified --overlap --json-out "$OUT/samplerstep-$name.json" || echo "FAILED (or cut off) $name"
  done
}

# quants: decode speed per quant type (llama-bench, flash attention on) on the 3B shape, each file quantized from
# one F16, benched and deleted at once, so a cut-off call still leaves every finished row in $OUT
# (QUANT_SIZE, QUANTS). Fits calibration.json's cuda_hbm quant_efficiency (docs/planning.md).
stage_quants() {
  local size=${QUANT_SIZE:-3B} q m
  for q in ${QUANTS:-Q6_K Q5_K_M Q3_K_M Q4_K_M Q8_0 Q4_0}; do
    $PY benchmarks/gpu/make_models.py "$WORK/models" "$size:F16" "$size:$q" | grep -v F16
    m=$(ls "$WORK"/models/qwen2.5-"${size,,}"-*-"$q".gguf | head -1)
    timeout 90 "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa 1 -o json >"$OUT/quant-$size-$q.json" 2>/dev/null \
      || echo "FAILED $q"
    rm -f "$m"
  done
}

# memory: predicted vs measured memory (NVML and RSS) with every layer offloaded, and with none (a CUDA build's own
# VRAM), for the 0.5B and 7B Q4_K_M. speed: llama-bench pp512/tg128 of every model with flash attention (SPEED_FA=0,1:
# without it too), the figures the speed model is scored on (benchmarks/speed_model_fit.py).
stage_memory() {
  timeout 200 $PY benchmarks/estimate_accuracy.py --gpu --sizes 0.5B,7B --quants Q4_K_M --models-dir "$WORK/models" \
    --cases 8192:f16:1,32768:q8_0:1 --json-out "$OUT/estimate_gpu_full.json" || echo "FAILED"
  timeout 200 $PY benchmarks/estimate_accuracy.py --gpu --ngl 0 --sizes 0.5B,7B --quants Q4_K_M --models-dir "$WORK/models" \
    --cases 8192:f16:1,8192:f16:0 --json-out "$OUT/estimate_gpu_ngl0.json" || echo "FAILED"
}

# memdiag: where a CUDA build's memory beyond llama.cpp's buffers goes, per case (issue 12's misses): resident memory
# and NVML after load / prefill / decode and smaps per mapping (estimate_accuracy.py --breakdown), with lazy kernel
# loading (the default) and with CUDA_MODULE_LOADING=EAGER, and the scheduler's op placement with no layer offloaded
# (GGML_SCHED_DEBUG=2). MEMDIAG_SIZES (default 0.5B,7B); everything in $OUT/memdiag.
stage_memdiag() {
  local R="$OUT/memdiag" sizes=${MEMDIAG_SIZES:-0.5B,7B} ea="$PY benchmarks/estimate_accuracy.py --gpu --quants Q4_K_M"
  mkdir -p "$R"
  { nvidia-smi; command -v nvcc >/dev/null && nvcc --version; ls -l "$BUILD"/bin/*.so*; } >"$R/versions.txt" 2>&1
  stamp "memdiag: no layer offloaded, lazy loading"
  timeout 150 $ea --ngl 0 --sizes "$sizes" --models-dir "$WORK/models" --cases 8192:f16:1,8192:f16:0 --breakdown --json-out "$R/ngl0.json"
  stamp "memdiag: every layer, lazy loading"
  timeout 150 $ea --sizes "$sizes" --models-dir "$WORK/models" --cases 8192:f16:1,8192:f16:0,32768:f16:1,32768:q8_0:1 --breakdown \
    --json-out "$R/full.json"
  stamp "memdiag: op placement with no layer offloaded"
  GGML_SCHED_DEBUG=2 timeout 60 $ea --ngl 0 --sizes 0.5B --models-dir "$WORK/models" --cases 8192:f16:0,8192:f16:1 \
    --log-dir "$R/logs" --json-out "$R/ngl0-sched.json" >/dev/null
  stamp "memdiag: eager loading"
  CUDA_MODULE_LOADING=EAGER timeout 120 $ea --ngl 0 --sizes "$sizes" --models-dir "$WORK/models" --cases 8192:f16:1,8192:f16:0 \
    --breakdown --json-out "$R/ngl0-eager.json"
  CUDA_MODULE_LOADING=EAGER timeout 90 $ea --sizes "$sizes" --models-dir "$WORK/models" --cases 8192:f16:1,32768:q8_0:1 \
    --breakdown --json-out "$R/full-eager.json"
  (cd "$R" && tar czf logs.tgz logs && rm -rf logs)
}

# memcheck: the CUDA host-memory model (estimate.cuda_host_bytes) on rows no constant was fitted on: quant mixes of one
# to six matrix types (0.5B/1.5B Q3_K_M, Q4_0, Q8_0), flash attention off at attention widths the fit never had
# (1.5B, 3B), a quantized KV cache with no layer offloaded; $OUT/memcheck-*.json. Models are generated as needed.
stage_memcheck() {
  local ea="$PY benchmarks/estimate_accuracy.py --gpu --models-dir $WORK/models"
  timeout 200 $ea --sizes 0.5B,1.5B --quants Q3_K_M,Q8_0,Q4_0 --cases 8192:f16:1,32768:q8_0:1 --json-out "$OUT/memcheck-types.json"
  timeout 150 $ea --sizes 1.5B,3B --quants Q4_K_M --cases 8192:f16:0,8192:f16:1 --json-out "$OUT/memcheck-widths.json"
  timeout 90 $ea --ngl 0 --sizes 0.5B,1.5B --quants Q3_K_M --cases 8192:f16:1,8192:f16:0,8192:q8_0:1 --json-out "$OUT/memcheck-ngl0.json"
}

# pooltrace: with a POOL_TRACE=1 build, the peak of ggml's CUDA pool per phase (load / prefill / decode), which no
# llama.cpp log line shows: no layer offloaded and every layer, flash attention on and off, a quantized KV cache;
# NVML checkpoints beside it. POOLTRACE_SIZES (default 0.5B,1.5B,3B,7B); $OUT/pooltrace*.json and traces.
stage_pooltrace() {
  local ea="$PY benchmarks/estimate_accuracy.py --gpu --models-dir $WORK/models --breakdown --pool-trace $OUT/pooltrace --log-dir $OUT/pooltrace/logs"
  local sizes=${POOLTRACE_SIZES:-0.5B,1.5B,3B,7B}
  timeout 240 $ea --ngl 0 --sizes "$sizes" --quants Q4_K_M --cases 8192:f16:1,8192:f16:0 --json-out "$OUT/pooltrace-ngl0.json"
  timeout 120 $ea --sizes "$sizes" --quants Q4_K_M --cases 8192:f16:1,8192:f16:0 --json-out "$OUT/pooltrace-full.json"
  timeout 60 $ea --ngl 0 --sizes 1.5B --quants Q3_K_M --cases 8192:q8_0:1,8192:f16:1 --json-out "$OUT/pooltrace-ngl0-q8kv.json"
  (cd "$OUT" && tar czf pooltrace-traces.tgz pooltrace && rm -rf pooltrace)
}

# graphcheck: the no-offload VRAM model on rows no constant saw: the 14B with no layer offloaded, 3B with 16 of 36
# layers on the host (partial offload), a longer prompt (more CUDA graphs captured), CUDA graphs off
# (GGML_CUDA_DISABLE_GRAPHS: none), and 3B without flash attention at 7,936 tokens (ggml's pool holds the f16 attention
# scores of the widest micro-batch). Models: 14B, 3B and 0.5B Q4_K_M. $OUT/graphcheck*.json, logs and traces.
stage_graphcheck() {
  local ea="$PY benchmarks/estimate_accuracy.py --gpu --models-dir $WORK/models --quants Q4_K_M --pool-trace $OUT/graphcheck"
  ea="$ea --log-dir $OUT/graphcheck/logs"
  timeout 150 $ea --ngl 0 --sizes 14B --cases 8192:f16:1 --json-out "$OUT/graphcheck-14b-ngl0.json"
  timeout 60 $ea --ngl 20 --sizes 3B --cases 8192:f16:1,8192:f16:0 --json-out "$OUT/graphcheck-3b-ngl20.json"
  timeout 60 $ea --ngl 0 --sizes 3B --fill 4096 --cases 8192:f16:1 --json-out "$OUT/graphcheck-3b-ngl0-fill4096.json"
  GGML_CUDA_DISABLE_GRAPHS=1 timeout 60 $ea --ngl 0 --sizes 0.5B,3B --cases 8192:f16:1 --json-out "$OUT/graphcheck-nographs.json"
  timeout 90 $ea --sizes 3B --fill 7936 --cases 8192:f16:0,8192:f16:1 --json-out "$OUT/graphcheck-3b-depth.json"
  (cd "$OUT" && tar czf graphcheck-traces-and-logs.tgz graphcheck && rm -rf graphcheck)
}

# hostgraphs: whether the host memory that grows with the model when every layer is offloaded (issue 12: the H200's
# full-offload rows missed by ~0 MB for the 0.5B and -25 MB for the 72B) is the decode's CUDA graph, whose nodes
# grow with the layers: every layer on the GPU, flash attention, 8,192 f16 cells, with CUDA graphs and with
# GGML_CUDA_DISABLE_GRAPHS=1, on Q4_0 files written directly (HOSTGRAPHS_SIZES: 24, 36 and 64 layers).
stage_hostgraphs() {
  local sizes=${HOSTGRAPHS_SIZES:-0.5B 3B 32B} s specs=()
  for s in $sizes; do specs+=("$s:Q4_0:Q4_0"); done
  $PY benchmarks/gpu/make_models.py "$WORK/models" "${specs[@]}" || return 1
  local ea="$PY benchmarks/estimate_accuracy.py --gpu --models-dir $WORK/models --quants Q4_0 --no-generate --cases 8192:f16:1"
  timeout 200 $ea --sizes "${sizes// /,}" --json-out "$OUT/hostgraphs-on.json"
  GGML_CUDA_DISABLE_GRAPHS=1 timeout 200 $ea --sizes "${sizes// /,}" --json-out "$OUT/hostgraphs-off.json"
}

# official: Qwen's own 0.5B-3B files store output.weight beside a tied token_embd (docs/planning.md, "The bytes a
# row's file holds"); files of that layout (OFFICIAL_SIZES, default "0.5B 1.5B 3B", Q4_K_M): VRAM and host memory with
# every layer offloaded and with none (the catalog's plan, what `plan` says before the download, is re-predicted from
# these JSON files afterwards: benchmarks/gpu/official_layout.py), and llama-bench of the 0.5B in both layouts (a token
# reads the same bytes). $OUT/official-*.json. Nothing is fitted on them.
stage_official() {
  local sizes=${OFFICIAL_SIZES:-0.5B 1.5B 3B} s specs=() m
  for s in $sizes; do specs+=("$s:Q4_K_M"); done
  OFFICIAL_LAYOUT=1 $PY benchmarks/gpu/make_models.py "$WORK/models" "${specs[@]}" || return 1
  local ea="$PY benchmarks/estimate_accuracy.py --gpu --no-generate"
  for m in "$WORK"/models/qwen2.5-*-official-*-Q4_K_M.gguf; do
    stamp "memory $(basename "$m")"
    timeout 100 $ea --model "$m" --cases 8192:f16:1,32768:q8_0:1 --json-out "$OUT/official-full-$(basename "$m" .gguf).json"
    timeout 60 $ea --ngl 0 --model "$m" --cases 8192:f16:1 --json-out "$OUT/official-ngl0-$(basename "$m" .gguf).json"
  done
  for m in "$WORK"/models/qwen2.5-0.5b-*Q4_K_M.gguf; do
    stamp "llama-bench $(basename "$m")"
    timeout 60 "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa 1 -o json \
      >"$OUT/official-speed-$(basename "$m" .gguf).json" 2>/dev/null || echo "FAILED"
  done
}

# kernels: the registers and shared memory of llama.cpp's decode mat-vec kernels per weight type (cuobjdump of the
# build), which set how many warps an SM keeps, so how many bytes it has in flight (docs/planning.md, "Decode per
# weight type"). nofamem: the CUDA compute buffer of a build with no layer offloaded and no flash attention, at several
# context lengths and sizes (NOFAMEM_SIZES, default "3B 7B 14B", Q4_0 written directly), predicted by the code as
# committed before it is measured ($OUT/nofamem-*.json).
# kernels: the built CUDA kernels' registers (mmvq-resources.txt) and MMQ's instructions per weight type as built
# (mmq-instructions.txt, benchmarks/cuda_mmq_instructions.py); with a build made with BUILD_TESTS=1, test-backend-ops'
# MUL_MAT timings of a 4096 x 14336 matrix per weight type at 1 token (mmvq, decode) and 512 (MMQ, a prompt batch).
stage_kernels() {
  local lib="$BUILD/bin/libggml-cuda.so"
  command -v cuobjdump >/dev/null || { echo "no cuobjdump"; return 0; }
  cuobjdump --dump-resource-usage "$lib" >"$WORK/resources.txt" 2>&1 || { tail -3 "$WORK/resources.txt"; return 0; }
  grep -A1 "mul_mat_vec_q" "$WORK/resources.txt" >"$OUT/mmvq-resources.txt"
  grep -c "Function" "$WORK/resources.txt"; wc -l "$OUT/mmvq-resources.txt"
  $PY benchmarks/cuda_mmq_instructions.py --binary "$lib" | tee "$OUT/mmq-instructions.txt"
  if [ -x "$BUILD/bin/test-backend-ops" ]; then
    "$BUILD/bin/test-backend-ops" perf -b CUDA0 -o MUL_MAT -p 'type_b=f32,m=4096,n=(1|512),k=14336,' >"$OUT/mul-mat-perf.txt" 2>&1
    grep "MUL_MAT" "$OUT/mul-mat-perf.txt" | grep -E "type_a=(q[2-8]_[0K]|f16)," | head -40
  fi
}

# decodetimes: Nsight Compute's time and DRAM bytes of every decode mat-vec kernel (mmvf for F16, mmvq for quantized
# types) in a few llama-bench tokens of each model, CUDA graphs off so each kernel is its own launch: what each matrix
# shape streams at, where the model prices one rate per weight type ($OUT/decodetimes-*.csv; docs/planning.md).
stage_decodetimes() {
  command -v ncu >/dev/null || { echo "no ncu"; return 0; }
  local m name
  for m in "$WORK"/models/*.gguf; do
    [ -f "$m" ] || continue
    name=$(basename "$m" .gguf)
    stamp "ncu $name"
    GGML_CUDA_DISABLE_GRAPHS=1 timeout "${NCU_TIMEOUT:-100}" ncu --clock-control none --csv --page raw --log-file "$OUT/decodetimes-$name.csv" \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,launch__grid_size,launch__block_size \
      --kernel-name regex:mul_mat_vec --launch-skip 400 --launch-count "${NCU_COUNT:-250}" \
      "$BUILD/bin/llama-bench" -m "$m" -p 0 -n 8 -r 1 -ngl 99 -fa 1 -o json >/dev/null 2>"$WORK/ncu-$name.err" \
      || { echo "FAILED"; tail -3 "$WORK/ncu-$name.err"; }
    wc -l "$OUT/decodetimes-$name.csv"
  done
}

stage_nofamem() {
  local sizes=${NOFAMEM_SIZES:-3B 7B 14B} s specs=()
  for s in $sizes; do specs+=("$s:Q4_0:Q4_0"); done
  $PY benchmarks/gpu/make_models.py "$WORK/models" "${specs[@]}" || return 1
  local ea="$PY benchmarks/estimate_accuracy.py --gpu --ngl 0 --models-dir $WORK/models --quants Q4_0 --no-generate"
  timeout 150 $ea --sizes 7B --cases 4096:f16:0,16384:f16:0,32768:f16:0 --json-out "$OUT/nofamem-7b.json"
  timeout 120 $ea --sizes 3B --cases 16384:f16:0,32768:f16:0 --json-out "$OUT/nofamem-3b.json"
  timeout 120 $ea --sizes 14B --cases 8192:f16:0,16384:f16:0 --json-out "$OUT/nofamem-14b.json"
}

# alloctrace: with a build made with ALLOC_TRACE=1, every allocation ggml's allocator makes while a context with no layer
# offloaded reserves its buffers (benchmarks/gpu/alloc_trace.py), per TRACE_CASES "SIZE:QUANT:N_CTX[:FLAGS]" of
# TRACE_MODELS, FLAGS alloc_trace.py's, comma-separated (fa,kv=q8_0,ngl=99); the trace is alloc-SIZE-QUANT-N_CTX[-FLAGS].
stage_alloctrace() {
  local specs=(${TRACE_MODELS:-0.5B:Q4_0:Q4_0 1.5B:Q4_0:Q4_0 3B:Q4_0:Q4_0 7B:Q4_0:Q4_0 14B:Q4_0:Q4_0}) c size quant ctx flags model name
  $PY benchmarks/gpu/make_models.py "$WORK/models" "${specs[@]}" || return 1
  for c in ${TRACE_CASES:-7B:Q4_0:4096 7B:Q4_0:8192 7B:Q4_0:16384 3B:Q4_0:8192 3B:Q4_0:16384 14B:Q4_0:8192 0.5B:Q4_0:8192 1.5B:Q4_0:8192}; do
    IFS=: read -r size quant ctx flags <<<"$c"
    model=$(ls "$WORK"/models/qwen2.5-"${size,,}"-*-"$quant".gguf | head -1)
    name="$OUT/alloc-$size-$quant-$ctx${flags:+-${flags//[,=]/-}}.txt"
    stamp "alloc trace $c"
    timeout 90 $PY benchmarks/gpu/alloc_trace.py "$model" "$ctx" ${flags//,/ } >"$name" 2>&1 || echo "FAILED $c"
    grep -c allocating "$name"; grep "CUDA0 compute buffer" "$name" | tail -1
    gzip -f "$name"
  done
}

# allocheck: the no-offload compute buffer (estimate._cuda_no_layer_compute_bytes) on files it was not written from,
# predicted by the code as committed before they are measured. By default session 20's: 7B Q8_0, 1.5B Q8_0, 7B Q3_K_M
# with no layer offloaded, flash attention off and on, and every layer offloaded for the refitted CUDA context. Or
# CHECK_MODELS (make_models.py specs) and CHECK_CASES "SIZE:QUANT:N_CTX:KV:FA[,N_CTX:KV:FA...] ...", no layer offloaded.
stage_allocheck() {
  $PY benchmarks/gpu/make_models.py "$WORK/models" ${CHECK_MODELS:-7B:Q8_0:Q8_0 1.5B:Q8_0:Q8_0 7B:Q3_K_M:Q8_0} || return 1
  local ea="$PY benchmarks/estimate_accuracy.py --gpu --models-dir $WORK/models --no-generate" c s q
  for c in ${CHECK_CASES:-7B:Q8_0:8192:f16:0,8192:f16:1 1.5B:Q8_0:8192:f16:0,8192:f16:1 7B:Q3_K_M:8192:f16:0,8192:f16:1}; do
    s=${c%%:*}; c=${c#*:}; q=${c%%:*}; c=${c#*:}
    timeout 150 $ea --ngl 0 --sizes $s --quants $q --cases "$c" --json-out "$OUT/allocheck-ngl0-$s-$q.json"
  done
  [ -n "${CHECK_CASES:-}" ] || timeout 100 $ea --sizes 7B,1.5B --quants Q8_0 --cases 8192:f16:1 --json-out "$OUT/allocheck-full-Q8_0.json"
}

# ctxmem: the CUDA context's parts before and after llama.cpp runs in it (benchmarks/gpu/context_memory.py), on the
# 0.5B and 7B Q4_0 files (written directly).
stage_ctxmem() {
  $PY benchmarks/gpu/make_models.py "$WORK/models" 0.5B:Q4_0:Q4_0 7B:Q4_0:Q4_0 || return 1
  local size
  for size in 0.5b 7b; do
    stamp "context memory $size"
    timeout 120 $PY benchmarks/gpu/context_memory.py "$(ls "$WORK"/models/qwen2.5-$size-*-Q4_0.gguf | head -1)" \
      >"$OUT/ctxmem-$size.json" 2>"$OUT/ctxmem-$size.log"; tail -2 "$OUT/ctxmem-$size.log"
  done
}

stage_speed() {
  local m
  for m in "$WORK"/models/*.gguf; do
    [ -f "$m" ] || continue
    stamp "llama-bench $(basename "$m")"
    timeout 120 "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa "${SPEED_FA:-1}" -o json >"$OUT/speed-$(basename "$m" .gguf).json" \
      2>/dev/null || echo "FAILED"
  done
}

# depth: decode with the KV cache already holding DEPTHS tokens (default 0,2048,8192,32768), flash attention on and off,
# every model: what `SpeedEstimate.tg_at` predicts (each cached token's K and V rows read once more per generated
# token). llama-bench -d fills the cache with a prompt of that length before each tg run. $OUT/depth-*.json; on the H200
# machine 50 s for the 0.5B and 7B Q4_K_M (2026-12-04): benchmarks/gpu/depth_vs_prediction.py sets them beside tg_at.
stage_depth() {
  depth_sweep depth "-p 0 -n $N -r 3" "${DEPTHS:-0,2048,8192,32768}"
}

# ppdepth: llama-bench's prompt batch (pp512) after PP_DEPTHS cached tokens, flash attention on and off, on every model:
# what a prompt's attention over the cache costs (speed.SpeedEstimate.pp_at). $OUT/ppdepth-<model>-fa<0|1>.json; the
# first sample of each series is a warm-up, 10-50 % slow (benchmarks/results/h100-ppdepth took six and their median).
stage_ppdepth() {
  depth_sweep ppdepth "-p $P -n 0 -r 6" "${PP_DEPTHS:-0,4096,16384,32768}"
}

depth_sweep() {  # NAME "TEST ARGS" DEPTHS: llama-bench at each depth, flash attention on and off, every model
  local m fa
  for m in "$WORK"/models/*.gguf; do
    [ -f "$m" ] || continue
    for fa in 1 0; do
      stamp "llama-bench $1 $(basename "$m") fa=$fa"
      # shellcheck disable=SC2086  # the test's arguments split on purpose
      timeout 240 "$BUILD/bin/llama-bench" -m "$m" $2 -ngl 99 -fa $fa -d "$3" -o json \
        >"$OUT/$1-$(basename "$m" .gguf)-fa$fa.json" 2>/dev/null || echo "FAILED"
    done
  done
}

# newsize: a size never measured before (NEWSIZE, default 32B; NEWSIZE_QUANT, default Q4_K_M, made from an intermediate
# written directly, NEWSIZE_VIA Q8_0 by default, since its F16 copy would not fit the disk; NEWSIZE_QUANT=NEWSIZE_VIA=Q4_0
# writes a Q4_0 file directly, with no llama-quantize): the file and llama-bench; then stage newsizemem, VRAM and host
# memory with every layer offloaded (flash attention, f16 and q8_0 cells) and with none. Nothing is fitted on it.
# $OUT/newsize-*.json. Time on the H200 machine (16 cores): 32B from the build to the last figure 300 s; a 72B Q4_K_M's
# quantization alone runs past 7 minutes (32 of its 47 GB were written 5.5 minutes after the stage began, when a 585 s
# call ended, 2026-12-01), so a 72B was measured at Q4_0 (NEWSIZE_QUANT=NEWSIZE_VIA=Q4_0); NEWSIZE_VIA=direct writes a
# Q4_K_M (or any recipe) with no quantizer run: build + newsize in one call, newsizemem in the next, warm.
newsize_file() {  # NEWSIZE_VIA=direct writes "...-Q4_K_M-direct.gguf" (make_models.py)
  ls "$WORK"/models/qwen2.5-"${NEWSIZE,,}"-*-"${NEWSIZE_QUANT:-Q4_K_M}"{,-direct}.gguf 2>/dev/null | head -1
}

stage_newsize() {
  NEWSIZE=${NEWSIZE:-32B}
  local quant=${NEWSIZE_QUANT:-Q4_K_M} m; df -h "$WORK" /dev/shm | tail -2
  $PY benchmarks/gpu/make_models.py "$WORK/models" "$NEWSIZE:$quant:${NEWSIZE_VIA:-Q8_0}" || return 1
  m=$(newsize_file)
  # the prediction of the code as committed, for this file on this machine, before anything is measured
  $PY - "$m" "$OUT/newsize-predicted-$NEWSIZE-$quant.json" <<'PYEOF' || echo "prediction FAILED"
import json, sys
from qwenctl.backends import LoadOptions
from qwenctl.hardware import detect
from qwenctl.predict import predict_for_file
p = predict_for_file(detect(), sys.argv[1], LoadOptions(n_ctx=8192, n_gpu_layers=-1, flash_attn=True))
doc = {"file": sys.argv[1], "tg_tps": p.tg_tps, "pp_tps": p.pp_tps}
json.dump(doc, open(sys.argv[2], "w"), indent=1)
print("predicted", doc)
PYEOF
  timeout 150 "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa 1 -o json >"$OUT/newsize-speed-$NEWSIZE-$quant.json" \
    2>/dev/null || echo "llama-bench FAILED"
}

stage_newsizemem() {
  NEWSIZE=${NEWSIZE:-32B}
  local quant=${NEWSIZE_QUANT:-Q4_K_M}
  local ea="$PY benchmarks/estimate_accuracy.py --gpu --model $(newsize_file)"
  timeout 200 $ea --cases 8192:f16:1,32768:q8_0:1 --json-out "$OUT/newsize-full-$NEWSIZE-$quant.json"
  timeout 200 $ea --ngl 0 --cases 8192:f16:1 --json-out "$OUT/newsize-ngl0-$NEWSIZE-$quant.json"
}

# shapesweep: decode against matrix width and layer count apart (benchmarks/gpu/shape_sweep.py): Qwen2.5 widths with other
# layer counts, predicted then measured (llama-bench tg128), each file deleted before the next. SWEEP_CASES
# ("SIZE:LAYERS:QUANT ..."; default the script's), SWEEP_DEADLINE (seconds, default 480: the call's limit less the build's
# absence on a warm machine), SWEEP_PP=1 (pp512 too: what a prompt layer costs on each kernel path).
stage_shapesweep() {
  # shellcheck disable=SC2086  # the cases are words
  $PY benchmarks/gpu/shape_sweep.py "$WORK/sweep" "$BUILD/bin/llama-bench" "$OUT/shape-sweep.json" ${SWEEP_CASES:-} \
    --deadline "${SWEEP_DEADLINE:-480}" ${SWEEP_PP:+--pp}
}

# multigpu: the two-GPU machine (nvidia-h200-x2). llama-bench's none/layer/tensor sweep and GPU 1 behind
# llama.cpp's own RPC server (ggml-rpc-server on 127.0.0.1); then qwenctl bench with the split it plans
# for the file and with each split forced, GPU memory per device against the prediction; the plans.
stage_multigpu() {
  local R="$WORK/results-multi" m name sm pid
  mkdir -p "$R"
  nvidia-smi --query-gpu=index,name,memory.total,memory.used,pcie.link.gen.max,pcie.link.width.max --format=csv | tee "$R/gpus.txt"
  nvidia-smi topo -m >"$R/topo.txt" 2>&1; cat "$R/topo.txt"
  nvidia-smi nvlink -s >"$R/nvlink.txt" 2>&1; head -20 "$R/nvlink.txt"
  for size in "" 72B 32B 7B 0.5B; do
    $PY -m qwenctl plan ${size:+--size $size} --json >"$R/plan${size:+-$size}.json" 2>"$R/plan${size:+-$size}.err" || cat "$R/plan${size:+-$size}.err"
  done
  $PY -m qwenctl plan --size 72B | head -30
  for m in "$WORK"/models/qwen2.5-*-Q4_K_M.gguf; do
    [ -f "$m" ] || continue
    name=$(basename "$m" .gguf)
    stamp "llama-bench sweep $name"
    "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa 1 -sm none,layer,tensor -o json \
      >"$R/llama-bench-sweep-$name.json" 2>"$R/llama-bench-sweep-$name.err" || tail -5 "$R/llama-bench-sweep-$name.err"
    stamp "llama-bench GPU 0 + GPU 1 behind ggml-rpc-server $name"
    CUDA_VISIBLE_DEVICES=1 "$BUILD/bin/ggml-rpc-server" -H 127.0.0.1 -p 50052 >"$R/rpc-server-$name.log" 2>&1 &
    pid=$!; sleep 4
    CUDA_VISIBLE_DEVICES=0 "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa 1 --rpc 127.0.0.1:50052 -o json \
      >"$R/llama-bench-rpc-$name.json" 2>"$R/llama-bench-rpc-$name.err" || tail -5 "$R/llama-bench-rpc-$name.err"
    kill $pid; wait $pid 2>/dev/null
    for sm in auto layer tensor none; do
      stamp "qwenctl bench $name split $sm"
      $PY -m qwenctl bench --model "$m" -p $P -n $N -r 3 --no-chat --no-save --json $([ $sm != auto ] && echo --split-mode $sm) \
        >"$R/qwenctl-$name-$sm.json" 2>"$R/qwenctl-$name-$sm.err" || tail -3 "$R/qwenctl-$name-$sm.err"
    done
  done
  $PY benchmarks/gpu/summarize_multigpu.py "$R" | tee "$OUT/multigpu.md"
  cp "$R"/*.json "$R"/*.txt "$OUT/" 2>/dev/null
}

# splits: on the two-GPU machine, qwenctl bench vs llama-bench with the same split, interleaved over rounds
# (bench_vs_llama_bench.py -sm), and llama.cpp's own per-device buffer log of every split at an 8k context
# (qwenctl -vv) beside the per-GPU memory NVML measured and the prediction. One archive: $OUT/splits.tgz.
stage_splits() {
  local R="$WORK/results-splits" m name sm
  mkdir -p "$R"
  for m in "$WORK"/models/qwen2.5-*-Q4_K_M.gguf; do
    [ -f "$m" ] || continue
    name=$(basename "$m" .gguf)
    for sm in $([ "${VS:-1}" = 1 ] && echo tensor layer); do
      stamp "bench_vs_llama_bench $name -sm $sm"
      $PY benchmarks/bench_vs_llama_bench.py --llama-bench "$BUILD/bin/llama-bench" --model "$m" -p $P -n $N -ngl 99 -fa \
        -sm $sm --rounds ${ROUNDS:-3} --json-out "$R/vs-$name-$sm.json" 2>&1 | tail -6
    done
    for sm in tensor layer none; do
      stamp "memory $name -sm $sm, 8192-token context"
      $PY -m qwenctl -vv bench --model "$m" --split-mode $sm --ctx 8192 -p $P -n 32 -r 1 --no-chat --no-save --json \
        >"$R/mem-$name-$sm.json" 2>"$R/mem-$name-$sm.log" || tail -3 "$R/mem-$name-$sm.log"
      grep -iE "buffer size|offloaded|pipeline|meta device|using device" "$R/mem-$name-$sm.log" | tee "$R/buffers-$name-$sm.txt" | head -20
    done
  done
  tar czf "$OUT/splits.tgz" -C "$R" .
}

# rpcworker: GPU 1 behind `qwenctl worker` (llama.cpp's RPC server in qwenctl), GPU 0 in the main process:
# what the planner says with --workers, qwenctl bench and llama-bench --rpc through the same worker beside
# the layer split, per-GPU memory (NVML sees both GPUs), and a worker killed mid-run (exit code, stderr).
stage_rpcworker() {
  local R="$WORK/results-rpc" m name pid port=50152
  mkdir -p "$R"
  for m in "$WORK"/models/qwen2.5-*-Q4_K_M.gguf; do
    [ -f "$m" ] || continue
    name=$(basename "$m" .gguf)
    CUDA_VISIBLE_DEVICES=1 $PY -m qwenctl worker --port $port >"$R/worker-$name.log" 2>&1 &
    pid=$!; sleep 8; cat "$R/worker-$name.log"
    CUDA_VISIBLE_DEVICES=0 $PY -m qwenctl plan --workers 127.0.0.1:$port --size $(echo "$name" | cut -d- -f2) >"$R/plan-$name.txt" 2>&1; head -20 "$R/plan-$name.txt"
    stamp "qwenctl bench $name, GPU 0 + GPU 1 behind qwenctl worker"
    CUDA_VISIBLE_DEVICES=0 $PY -m qwenctl bench --model "$m" --workers 127.0.0.1:$port --split-mode layer -p $P -n $N -r 3 \
      --no-chat --no-save --json >"$R/qwenctl-rpc-$name.json" 2>"$R/qwenctl-rpc-$name.err" || tail -3 "$R/qwenctl-rpc-$name.err"
    stamp "llama-bench $name --rpc through the same worker"
    CUDA_VISIBLE_DEVICES=0 "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa 1 --rpc 127.0.0.1:$port -o json \
      >"$R/llama-bench-rpc-$name.json" 2>"$R/llama-bench-rpc-$name.err" || tail -3 "$R/llama-bench-rpc-$name.err"
    stamp "worker killed mid-run"
    ( CUDA_VISIBLE_DEVICES=0 timeout 120 $PY -m qwenctl bench --model "$m" --workers 127.0.0.1:$port --split-mode layer -p $P -n 4000 \
        -r 5 --no-chat --no-save >"$R/killed-$name.out" 2>"$R/killed-$name.err"; echo "exit $?" >>"$R/killed-$name.out" ) &
    local main=$!; sleep 15; kill -9 $pid; local t0=$SECONDS; wait $main; echo "main ended $((SECONDS - t0)) s after the kill"
    cat "$R/killed-$name.out"; tail -2 "$R/killed-$name.err"
  done
  tar czf "$OUT/rpcworker.tgz" -C "$R" .
}

# rpccompare: llama-bench --rpc through llama.cpp's ggml-rpc-server and through `qwenctl worker`, alternating
# on the same machine (GPU 1 serves, GPU 0 is local), to tell the server from the machine.
stage_rpccompare() {
  local R="$WORK/results-rpccompare" m name pid round
  mkdir -p "$R"
  m=$(ls "$WORK"/models/qwen2.5-7b-*-Q4_K_M.gguf | head -1); name=$(basename "$m" .gguf)
  for round in $(seq 1 ${RC_ROUNDS:-2}); do
    for server in ggml qwenctl; do
      if [ $server = ggml ]; then
        CUDA_VISIBLE_DEVICES=1 "$BUILD/bin/ggml-rpc-server" -H 127.0.0.1 -p 50052 >"$R/$server-$round.log" 2>&1 &
      else
        CUDA_VISIBLE_DEVICES=1 $PY -m qwenctl worker --port 50052 >"$R/$server-$round.log" 2>&1 &
      fi
      pid=$!; sleep 6
      CUDA_VISIBLE_DEVICES=0 "$BUILD/bin/llama-bench" -m "$m" -p $P -n $N -r 3 -ngl 99 -fa 1 --rpc 127.0.0.1:50052 -o json \
        >"$R/llama-bench-$server-$round.json" 2>/dev/null
      kill $pid; wait $pid 2>/dev/null; sleep 1
      $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], [(x['n_prompt'], x['n_gen'], round(x['avg_ts'], 1)) for x in r])" \
        "$R/llama-bench-$server-$round.json" $server $round
    done
  done
}

stage_cpu() {
  # The host CPU alone, no GPU: llama.cpp built twice for it (CMake's native flags; and native without AMX, explicit
  # -mno-amx-* flags outlasting -march=native), llama-bench on every model in $WORK/models with every core, weights
  # repacked (extra buffer types) and not; and the host's read bandwidth as `qwenctl detect --measure` finds it.
  # On an AMX Xeon this is what llama.cpp's AMX kernels add to prompts over AVX-512 VNNI (docs/planning.md).
  local R="$WORK/results-cpu" variant dir flags m name t0
  mkdir -p "$R"; gcc --version | head -1
  for variant in amx noamx; do
    dir="$WORK/llama-cpu-$variant"; flags=""
    [ $variant = noamx ] && flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    if [ ! -x "$dir/bin/llama-bench" ]; then
      t0=$SECONDS
      cmake -S "$SDIST/vendor/llama.cpp" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_CUDA=OFF \
        -DGGML_NATIVE=ON -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$R/cmake-$variant.log" 2>&1 || { tail -20 "$R/cmake-$variant.log"; return 1; }
      cmake --build "$dir" --target llama llama-bench -j "$JOBS" >"$R/build-$variant.log" 2>&1 || { tail -30 "$R/build-$variant.log"; return 1; }
      stamp "cpu build $variant in $((SECONDS - t0)) s"
    fi
  done
  install_wheels || return 1
  LLAMA_CPP_LIB_PATH="$WORK/llama-cpu-amx/bin" $PY -m qwenctl detect --measure --json >"$R/detect.json" 2>"$R/detect.err"
  $PY -c "import json,sys; m=json.load(open(sys.argv[1]))['memory']; print('host bandwidth', m.get('bandwidth_bytes_per_s'), m.get('bandwidth_source'))" "$R/detect.json"
  [ -n "${CPU_MODELS:-}" ] && LLAMA_CPP_LIB_PATH="$WORK/llama-cpu-amx/bin" $PY benchmarks/gpu/make_models.py "$WORK/models" $CPU_MODELS
  for m in "$WORK"/models/*.gguf; do
    name=$(basename "$m" .gguf)
    for variant in amx noamx; do
      [ -f "$R/$variant-$name.json" ] && continue
      "$WORK/llama-cpu-$variant/bin/llama-bench" -m "$m" -p $P -n $N -r ${CPU_REPS:-2} -t "$(nproc)" --repack 1,0 -o json \
        >"$R/$variant-$name.json" 2>"$R/$variant-$name.err" || { tail -5 "$R/$variant-$name.err"; continue; }
      cp "$R/$variant-$name.json" "$R/$variant-$name.err" "$OUT"/  # each as it is made: a call cut at its limit keeps them
      $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], [(x['n_prompt'], x['n_gen'], x.get('repack'), round(x['avg_ts'], 1)) for x in r])" \
        "$R/$variant-$name.json" "$variant $name"
    done
  done
  cp "$R"/detect.json "$OUT"/ 2>/dev/null; grep -h "AMX\|CPU_REPACK\|CPU model" "$R"/*.err | sort | uniq -c | head -20 || true
}

# servefuzz: benchmarks/serve_fuzz.py against `qwenctl serve` on the GPU (every layer offloaded, llama.cpp's device
# sampler path): the tiny test model, then the 0.5B Q4_K_M (Qwen's 151,936-token vocabulary, where a logit_bias
# id or a top_k meets the real bound). Needs the server's wheels in .whl (fastapi, uvicorn, pydantic, ...).
stage_servefuzz() {
  local tiny m
  tiny=$($PY -c "from pathlib import Path; from qwenctl.testing.models import tiny_gguf; print(tiny_gguf(Path('$WORK/tiny')))") || return 1
  for m in "$tiny" $(ls "$WORK"/models/qwen2.5-0.5b-*-Q4_K_M.gguf 2>/dev/null | head -1); do
    stamp "serve_fuzz $(basename "$m")"
    timeout ${FUZZ_TIMEOUT:-240} $PY benchmarks/serve_fuzz.py "$m" 2>&1 | tee "$OUT/servefuzz-$(basename "$m" .gguf).txt" | tail -25 \
      || echo "FAILED (or cut off) $(basename "$m")"
  done
}

# cpualone: the host memory of a load no GPU joins (LoadOptions.cpu_alone: a plan on the CPU on a machine whose GPU is
# full) with the CUDA build, against the prediction (estimate.estimate_memory's cuda_runtime): the 0.5B and 7B Q4_K_M
# (MODELS), flash attention on and off, smaps per mapping (--breakdown); then the CUDA build with no GPU visible to CUDA
# (CUDA_VISIBLE_DEVICES=""). Results of session 72: benchmarks/results/h100-cpu-alone-s72.
stage_cpualone() {
  local ea=($PY benchmarks/estimate_accuracy.py --cpu-alone --breakdown --quants Q4_K_M --models-dir "$WORK/models" --no-generate
            --fill 512 --sizes "${CPUALONE_SIZES:-0.5B,7B}" --cases 4096:f16:1,4096:f16:0)
  stamp "CUDA build, no GPU device"
  timeout 200 "${ea[@]}" --json-out "$OUT/estimate_cpu_alone_cuda_build.json" || echo "FAILED"
  stamp "CUDA build, no GPU visible"
  CUDA_VISIBLE_DEVICES="" timeout 100 "${ea[@]}" --sizes 0.5B --cases 4096:f16:1 --json-out "$OUT/estimate_cpu_alone_no_gpu_visible.json" \
    || echo "FAILED"
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build models run)
# every stage runs qwenctl, which needs the carried wheels (platformdirs, diskcache, gguf): install them first, also on a
# machine that was given back and started fresh between calls, where an earlier call's `build` left nothing
install_wheels || { stamp "installing the carried wheels failed"; exit 1; }
# the stages this script has, named once: the loop below checks a name against them before it runs stage_<name>
known=(build models run facts extras quants memory memdiag memcheck pooltrace graphcheck hostgraphs official kernels
       decodetimes nofamem alloctrace allocheck ctxmem speed depth sampling samplerstep multigpu splits rpcworker rpccompare
       cpu ppdepth newsize newsizemem shapesweep servefuzz cpualone)
for s in "${stages[@]}"; do
  if [[ ! " ${known[*]} " =~ " $s " ]]; then
    echo "unknown stage $s (one of: ${known[*]})"; exit 2
  fi
  if [[ ! " build models cpu " =~ " $s " ]] && [[ ! " ${stages[*]} " =~ " build " ]] && [ ! -f "$BUILD/bin/libllama.so" ]; then
    stamp "stage $s needs the CUDA build, which this machine lacks (a fresh machine): call \`build\` first"; exit 1
  fi
  stamp "stage $s"; "stage_$s" || { stamp "stage $s failed"; exit 1; }
done
stamp "done"
