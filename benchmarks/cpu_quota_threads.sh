#!/usr/bin/env bash
# llama.cpp's decode and prompt speed at 1 and 2 threads, unlimited and under cgroup v1 CPU quotas of 1.5 and 1 CPU
# (what `docker run --cpus` sets), with `qwenctl bench` and its prediction beside each: how many threads a quota
# should get (machine.threads) and what they are priced at (machine.host_device). Needs root and a cgroup v1 `cpu`
# hierarchy at /sys/fs/cgroup/cpu; MODEL (a GGUF file), RUNS (default 3) and OUT (a folder for the bench JSON).
#   MODEL=qwen2.5-0.5b-Q4_K_M.gguf bash benchmarks/cpu_quota_threads.sh
set -eu
MODEL=${MODEL:?a GGUF file}
OUT=${OUT:-$(mktemp -d)}
PY=${PY:-python}
CG=/sys/fs/cgroup/cpu/qwenctl-quota-bench
mkdir -p "$CG" "$OUT"
trap 'echo -1 > "$CG/cpu.cfs_quota_us"' EXIT
echo 100000 > "$CG/cpu.cfs_period_us"
for run in $(seq "${RUNS:-3}"); do
  for quota in -1 150000 100000; do
    echo "$quota" > "$CG/cpu.cfs_quota_us"
    for t in 1 2; do
      f="$OUT/run$run-quota$quota-t$t.json"
      bash -c "echo \$\$ > $CG/cgroup.procs; exec $PY -m qwenctl bench '$MODEL' -p 64 -n 64 -r 3 -t $t --no-chat --no-save --json" >"$f"
      $PY - "$f" "$quota" "$t" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["predicted"]
print(f"quota {sys.argv[2]:>7}  threads {d['n_threads']}  tg {d['tg_tps']['median']:5.1f} (predicted {p['tg_tps']:5.1f})"
      f"  pp {d['pp_tps']['median']:6.1f} (predicted {p['pp_tps']:6.1f})")
PY
    done
  done
done
