"""qwenctl on a GPU whose memory another program holds, as a user who keeps Ollama loaded would meet it.

    python benchmarks/gpu/held_gpu.py MODEL.gguf      (on the GPU machine; OUT: where the outputs go)

Another process (PyTorch, on the image) takes all but HELD_FREE_MIB (4) of GPU 0's free memory and keeps it while
`qwenctl detect`, `qwenctl plan` and `qwenctl bench --model MODEL` run, then llama-cpp-python alone asked for every
layer (what a load did before qwenctl planned such a machine on the CPU). Each command's output lands in
$OUT/held-<name>.txt; a line per command says its exit status and first line.
"""

from __future__ import annotations

import os
import subprocess
import sys

HOLD = ("import sys, torch; free, _ = torch.cuda.mem_get_info(); "
        "held = torch.empty(free - {keep}, dtype=torch.uint8, device='cuda'); "
        "print('holding', held.numel(), flush=True); sys.stdin.read()")
RAW = "import sys, llama_cpp; llama_cpp.Llama(sys.argv[1], n_gpu_layers=-1, n_ctx=256, verbose=True)"


def main(model: str) -> None:
    out = os.environ["OUT"]
    keep = int(os.environ.get("HELD_FREE_MIB", "4")) * 2**20
    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(keep=keep)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None
    print(holder.stdout.readline().strip())
    commands = {
        "detect": [sys.executable, "-m", "qwenctl", "detect"],
        "plan": [sys.executable, "-m", "qwenctl", "plan"],
        "bench-model": [sys.executable, "-m", "qwenctl", "bench", "--model", model, "-p", "64", "-n", "16", "--no-save"],
        "raw-ngl-all": [sys.executable, "-c", RAW, model],
    }
    try:
        for name, command in commands.items():
            r = subprocess.run(command, capture_output=True, text=True, timeout=200)
            with open(f"{out}/held-{name}.txt", "w") as f:
                f.write(f"$ {' '.join(command[1:])}\nrc {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr[-6000:]}\n")
            print(name, "rc", r.returncode, (r.stdout.strip().splitlines() or [""])[0][:150])
    finally:
        holder.communicate("")


if __name__ == "__main__":
    main(sys.argv[1])
