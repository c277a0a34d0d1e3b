#!/usr/bin/env bash
# Device driver: serve --parallel 16 with the step trace, variants interleaved; then the engine alone traced.
set -u
ROOT=$(pwd); WORK=/root/qwenctl-gpu; OUT=${OUT:-$WORK/out}
SDIST=$(ls -d "$ROOT"/.sdist/llama_cpp_python-* | head -1)
export LLAMA_CPP_LIB_PATH="$WORK/llama-cuda/bin" PYTHONUNBUFFERED=1 XDG_DATA_HOME="$WORK/xdg" HF_HUB_OFFLINE=1
BASEPATH="$ROOT:$SDIST:$WORK/site:$ROOT/.ab/trace"
python3 -m pip install -q --no-index --no-deps --target "$WORK/uvsite" .ab/uv/*.whl 2>&1 | tail -2
M=$(ls $WORK/models/qwen2.5-0.5b-*-Q4_K_M.gguf | head -1)
nproc; lscpu | grep -i "model name\|MHz" ; python3 -V
one() {  # variant-name, extra env...
  local v=$1; shift
  mkdir -p "$OUT/$v"
  echo "== $(date +%T) $v"
  env "$@" STEP_TRACE_DIR="$OUT/$v" timeout 120 python3 benchmarks/sampling.py "$M" --n-gen 256 --trials ${TRIALS:-3} --ctx 2048 \
     --skip paired,run,serve --json-out "$OUT/$v/sampling.json" 2>&1 | grep -E "decode |serve_(1|16)_clients" | sed "s/^/$v /"
  python3 .ab/trace/analyze.py "$OUT/$v" 2>&1 | grep -E "busy 16|busy  1:" | sed "s/^/$v /"
}
engine() {  # name
  mkdir -p "$OUT/$1"
  echo "== $(date +%T) $1"
  STEP_TRACE_DIR="$OUT/$1" TRACE_ANY=1 PYTHONPATH="$BASEPATH" timeout 120 python3 benchmarks/sampler_step.py "$M" --seqs 16 --steps 300 --overlap 2>&1 | tail -9 | sed "s/^/$1 /"
  python3 .ab/trace/analyze.py "$OUT/$1" 2>&1 | sed "s/^/$1 /"
}
one base1 PYTHONPATH="$BASEPATH"
one uv1 PYTHONPATH="$BASEPATH:$WORK/uvsite"
one gil1 PYTHONPATH="$BASEPATH" TRACE_GILKEEP_DECODE=1
engine engine
cp .ab/tk2/batched_top_k.py .ab/tk2/generation.py .ab/tk2/sampling.py qwenctl/backends/ && cp .ab/tk2/sampler_step.py benchmarks/
one tk-base1 PYTHONPATH="$BASEPATH"
one tk-uv1 PYTHONPATH="$BASEPATH:$WORK/uvsite"
one tk-gil1 PYTHONPATH="$BASEPATH" TRACE_GILKEEP_DECODE=1
engine tk-engine
git checkout qwenctl/backends/generation.py qwenctl/backends/sampling.py benchmarks/sampler_step.py; rm -f qwenctl/backends/batched_top_k.py
one base2 PYTHONPATH="$BASEPATH"
one uv2 PYTHONPATH="$BASEPATH:$WORK/uvsite"
one gil2 PYTHONPATH="$BASEPATH" TRACE_GILKEEP_DECODE=1
echo "== $(date +%T) done"
