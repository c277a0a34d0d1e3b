#!/usr/bin/env bash
# A/B on the device: run.sh sampling (0.5B) with the two-level top-k (new) and llama.cpp's top-k (old), alternating.
set -u
ROUNDS=${ROUNDS:-2}
BASE=${OUT:-/root/qwenctl-gpu/out}
for i in $(seq 1 $ROUNDS); do
  for v in new old; do
    cp .ab/tk/$v/generation.py qwenctl/backends/generation.py
    mkdir -p "$BASE/$v$i"
    OUT="$BASE/$v$i" SAMPLING_TRIALS=${TRIALS:-5} bash benchmarks/gpu/run.sh sampling 2>&1 | grep -E "^  (decode|chat_device|run_p|serve_)" | head -14 | sed "s/^/$v$i /"
  done
done
cp .ab/tk/new/generation.py qwenctl/backends/generation.py
