#!/usr/bin/env bash
# lmbench's bw_mem read (the figure SpareCores' inspector records for every VM: `bw_mem -P $(nproc) SIZE rd`) beside
# `qwenctl detect --measure`'s read test, at 1, 2, 4, ... threads up to the CPU count, three runs each.
#
#   LMBENCH_SRC=/path/to/lmbench/src OUT=dir bash benchmarks/bw_mem_vs_read_test.sh
#
# LMBENCH_SRC: an lmbench 3 source tree's src/ (e.g. github.com/intel/lmbench); bw_mem is built from it with an
# empty rpc/rpc.h (bw_mem needs none of Sun RPC, which newer glibc no longer ships). Prints one line per run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d)}
STUB=$(mktemp -d)
mkdir -p "$STUB/rpc" "$OUT"
: > "$STUB/rpc/rpc.h"
printf '#include <stdint.h>\n#include <sys/types.h>\n' > "$STUB/rpc/types.h"
(cd "$LMBENCH_SRC" && gcc -O -w -I"$STUB" -DHAVE_uint=1 -DHAVE_uint64_t=1 -DHAVE_int64_t=1 -DHAVE_socklen_t -DHAVE_DRAND48 \
  -DHAVE_SCHED_SETAFFINITY=1 -o "$OUT/bw_mem" bw_mem.c lib_timing.c lib_mem.c lib_stats.c lib_debug.c lib_sched.c getopt.c -lm)
n=1
while [ "$n" -le "$(nproc)" ]; do
  for _ in 1 2 3; do
    b=$("$OUT/bw_mem" -P "$n" 512M rd 2>&1 | awk '{print $2}')
    t=$(PYTHONPATH="$ROOT" python3 -c "from qwenctl.hardware import bandwidth; print(round(bandwidth.measure(threads=$n).bytes_per_s / 1e6))")
    echo "threads $n bw_mem_MBps $b read_test_MBps $t"
  done
  n=$((n * 2))
done
