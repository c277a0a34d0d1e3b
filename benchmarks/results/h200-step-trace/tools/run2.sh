#!/usr/bin/env bash
# Device call 2: why serve's llama_decode host time is 2x the engine's (graph reuse? CPU contention? KV size?).
set -u
ROOT=$(pwd); WORK=/root/qwenctl-gpu; OUT=${OUT:-$WORK/out}
SDIST=$(ls -d "$ROOT"/.sdist/llama_cpp_python-* | head -1)
export LLAMA_CPP_LIB_PATH="$WORK/llama-cuda/bin" PYTHONUNBUFFERED=1 XDG_DATA_HOME="$WORK/xdg" HF_HUB_OFFLINE=1
BASEPATH="$ROOT:$SDIST:$WORK/site:$ROOT/.ab/trace"
M=$(ls $WORK/models/qwen2.5-0.5b-*-Q4_K_M.gguf | head -1)
one() {  # variant-name, extra env...
  local v=$1; shift
  mkdir -p "$OUT/$v"
  echo "== $(date +%T) $v"
  env "$@" STEP_TRACE_DIR="$OUT/$v" timeout 120 python3 benchmarks/sampling.py "$M" --n-gen 256 --trials ${TRIALS:-3} --ctx 2048 \
     --skip paired,run,serve --json-out "$OUT/$v/sampling.json" 2>&1 | grep -E "decode |serve_(1|16)_clients" | sed "s/^/$v /"
  python3 .ab/trace/analyze.py "$OUT/$v" 2>&1 | grep -E "busy 16|busy  1:" | sed "s/^/$v /"
}
engine() {  # name, extra env...
  local v=$1; shift
  mkdir -p "$OUT/$v"
  echo "== $(date +%T) $v"
  env "$@" STEP_TRACE_DIR="$OUT/$v" TRACE_ANY=1 PYTHONPATH="$BASEPATH" timeout 120 python3 benchmarks/sampler_step.py "$M" --seqs 16 --steps 300 --overlap 2>&1 | grep -E "^ +16 " | sed "s/^/$v /"
  python3 .ab/trace/analyze.py "$OUT/$v" 2>&1 | grep busy | sed "s/^/$v /"
}
one base PYTHONPATH="$BASEPATH"
one pinned PYTHONPATH="$BASEPATH" TRACE_PIN_SERVER=0-7 TRACE_PIN_OTHERS=8-15
engine engine
engine engine-noreuse LLAMA_GRAPH_REUSE_DISABLE=1
for i in $(seq 12); do python3 -c 'while True: pass' & done
engine engine-busy12
kill $(jobs -p) 2>/dev/null; wait 2>/dev/null
sed -i 's/n_ctx = len(prompt) + warmup + steps + 16/n_ctx = 2048/' benchmarks/sampler_step.py
engine engine-ctx2048
git checkout benchmarks/sampler_step.py
one pinned2 PYTHONPATH="$BASEPATH" TRACE_PIN_SERVER=0-7 TRACE_PIN_OTHERS=8-15
one base2 PYTHONPATH="$BASEPATH"
echo "== $(date +%T) done"
