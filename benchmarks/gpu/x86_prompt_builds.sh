#!/usr/bin/env bash
# How fast llama.cpp's x86 CPU kernels prompt, build by build, on one host: the vendored llama.cpp of several
# llama-cpp-python releases built CPU-only per instruction set (avx2: AVX2, FMA, F16C, as llama.cpp's prebuilt `haswell`
# CPU variant; avx512: the same with AVX-512, VBMI and VNNI, as its `icelake` variant; amx: that with AVX-512 BF16 and
# AMX, as its `sapphirerapids` variant), then llama-bench pp on a shape-faithful Qwen2.5 Q4_K_M
# (benchmarks/gpu/make_models.py), repacked and not where the build can say.
#
#   bash benchmarks/gpu/x86_prompt_builds.sh SOURCES_DIR
#
# SOURCES_DIR holds xp-<version>.tgz (a release's vendor/llama.cpp, stripped of models, docs and GPU backends) and
# llama_cpp_py-<last version>.tgz (that release's llama_cpp Python package): the k-quant files are written with the
# quantizer of the last version's libggml (qwenctl.testing.models), built shared once for that.
#
# Environment: VERSIONS ("0.3.8 0.3.9 0.3.36"), VARIANTS ("avx2 avx512"), THREADS ("2,16"), MODELS ("1.5B:Q4_K_M:direct"),
# OUT (results; default ./x86-prompt-builds). Results: OUT/<version>-<variant>-<model>.json (llama-bench -o json), log.txt.
set -uo pipefail
SRC=$(cd "$1" && pwd)
ROOT=$(pwd)
WORK=${WORK:-/tmp/x86-prompt-builds}
OUT=${OUT:-$ROOT/x86-prompt-builds}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$WORK" "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
stamp() { echo "== $(date +%T) $*"; }

flags_for() {
  case $1 in
    avx2) echo "-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF" ;;
    avx512) echo "-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON" ;;
    amx) echo "$(flags_for avx512) -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=ON -DGGML_AMX_INT8=ON -DGGML_AMX_BF16=ON" ;;
  esac
}

lscpu | grep -E "Model name|^CPU\(s\)|Thread|MHz" ; gcc --version | head -1
for v in ${VERSIONS:-0.3.8 0.3.9 0.3.36}; do
  [ -d "$WORK/src-$v/llama.cpp" ] || { mkdir -p "$WORK/src-$v" && tar xzf "$SRC/xp-$v.tgz" -C "$WORK/src-$v"; }
  for variant in ${VARIANTS:-avx2 avx512}; do
    dir="$WORK/build-$v-$variant"
    [ -x "$dir/bin/llama-bench" ] && continue
    t0=$SECONDS
    # shellcheck disable=SC2046
    cmake -S "$WORK/src-$v/llama.cpp" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
      -DGGML_CUDA=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF $(flags_for "$variant") \
      >"$OUT/cmake-$v-$variant.log" 2>&1 || { tail -20 "$OUT/cmake-$v-$variant.log"; continue; }
    cmake --build "$dir" --target llama-bench -j "$JOBS" >"$OUT/build-$v-$variant.log" 2>&1 \
      || { tail -20 "$OUT/build-$v-$variant.log"; continue; }
    stamp "built $v $variant in $((SECONDS - t0)) s"
  done
done

last=$(echo ${VERSIONS:-0.3.8 0.3.9 0.3.36} | awk '{print $NF}')
lib="$WORK/build-$last-shared"
if [ ! -f "$lib/bin/libllama.so" ]; then
  cmake -S "$WORK/src-$last/llama.cpp" -B "$lib" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DGGML_CUDA=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF $(flags_for avx2) >"$OUT/cmake-shared.log" 2>&1 \
    && cmake --build "$lib" --target llama -j "$JOBS" >"$OUT/build-shared.log" 2>&1 || tail -20 "$OUT/build-shared.log"
fi
mkdir -p "$WORK/site" && tar xzf "$SRC/llama_cpp_py-$last.tgz" -C "$WORK/site"
python3 -m pip install -q --no-index --no-deps --target "$WORK/site" "$ROOT"/.whl/*.whl 2>/dev/null
LLAMA_CPP_LIB_PATH="$lib/bin" PYTHONPATH="$ROOT:$WORK/site" python3 benchmarks/gpu/make_models.py "$WORK/models" \
  ${MODELS:-1.5B:Q4_K_M:direct}

for m in "$WORK"/models/*.gguf; do
  name=$(basename "$m" .gguf | cut -d- -f1,2)
  for v in ${VERSIONS:-0.3.8 0.3.9 0.3.36}; do
    for variant in ${VARIANTS:-avx2 avx512}; do
      bench="$WORK/build-$v-$variant/bin/llama-bench"
      [ -x "$bench" ] || continue
      repack=()
      "$bench" --help 2>&1 | grep -q -- "--repack" && repack=(--repack 1,0)
      "$bench" -m "$m" -p 512 -n 0 -r 2 -fa 1 -t "${THREADS:-2,16}" "${repack[@]}" -o json \
        >"$OUT/$v-$variant-$name.json" 2>"$OUT/$v-$variant-$name.err" || { tail -5 "$OUT/$v-$variant-$name.err"; continue; }
      python3 -c "import json,sys; print(sys.argv[2], [(x['n_threads'], x.get('repack'), round(x['avg_ts'], 1)) for x in json.load(open(sys.argv[1]))])" \
        "$OUT/$v-$variant-$name.json" "$v $variant $name"
    done
  done
done
stamp done
