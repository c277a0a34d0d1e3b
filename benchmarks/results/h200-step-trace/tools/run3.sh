#!/usr/bin/env bash
# Device call 3: lowering logit biases on the host (the fix) vs on the device (HEAD), serve and engine; + two-level top-k.
set -u
ROOT=$(pwd); WORK=/root/qwenctl-gpu; OUT=${OUT:-$WORK/out}
SDIST=$(ls -d "$ROOT"/.sdist/llama_cpp_python-* | head -1)
export LLAMA_CPP_LIB_PATH="$WORK/llama-cuda/bin" PYTHONUNBUFFERED=1 XDG_DATA_HOME="$WORK/xdg" HF_HUB_OFFLINE=1
BASEPATH="$ROOT:$SDIST:$WORK/site:$ROOT/.ab/trace"
M=$(ls $WORK/models/qwen2.5-0.5b-*-Q4_K_M.gguf | head -1)
S=qwenctl/backends/sampling.py
one() {  # variant-name, extra env...
  local v=$1; shift
  mkdir -p "$OUT/$v"
  echo "== $(date +%T) $v $(grep -c host_bias $S)"
  env "$@" STEP_TRACE_DIR="$OUT/$v" timeout 120 python3 benchmarks/sampling.py "$M" --n-gen 256 --trials ${TRIALS:-3} --ctx 2048 \
     --skip paired,run,serve --json-out "$OUT/$v/sampling.json" 2>&1 | grep -E "decode |serve_(1|16)_clients" | sed "s/^/$v /"
  python3 .ab/trace/analyze.py "$OUT/$v" 2>&1 | grep -E "busy 16|busy  1:" | sed "s/^/$v /"
}
engine() {  # name
  local v=$1; shift
  mkdir -p "$OUT/$v"
  echo "== $(date +%T) $v $(grep -c host_bias $S)"
  STEP_TRACE_DIR="$OUT/$v" TRACE_ANY=1 PYTHONPATH="$BASEPATH" timeout 120 python3 benchmarks/sampler_step.py "$M" --seqs 1,16 --steps 300 --overlap --json-out "$OUT/$v/samplerstep.json" 2>&1 | grep -E "^ +(1|16) |sampling on" | sed "s/^/$v /"
}
one fix1 PYTHONPATH="$BASEPATH"
cp .ab/fix/sampling-old.py $S; one old1 PYTHONPATH="$BASEPATH"
cp .ab/fix/sampling.py $S; one fix2 PYTHONPATH="$BASEPATH"
cp .ab/fix/sampling-old.py $S; one old2 PYTHONPATH="$BASEPATH"
cp .ab/fix/sampling.py $S; engine engine-fix
cp .ab/fix/sampling-old.py $S; engine engine-old
cp .ab/tk4/batched_top_k.py .ab/tk4/generation.py .ab/tk4/sampling.py qwenctl/backends/
one tk4-1 PYTHONPATH="$BASEPATH"
one tk4-2 PYTHONPATH="$BASEPATH"
git checkout qwenctl/backends/generation.py; rm -f qwenctl/backends/batched_top_k.py; cp .ab/fix/sampling.py $S
one fix3 PYTHONPATH="$BASEPATH"
echo "== $(date +%T) done"
