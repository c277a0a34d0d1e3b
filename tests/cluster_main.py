"""The main machine of a cluster test, as a subprocess (registering RPC devices cannot be undone, so the test
process itself never attaches): load a GGUF through qwenctl's own loader with the split a plan would give, run a
full prompt batch and a few tokens, say "holding" and wait for a line on stdin while the test measures the workers.

    python tests/cluster_main.py MODEL --workers A,B --ngl N [--ctx 2048] [--prompt 512]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--workers", required=True)
    p.add_argument("--ngl", type=int, required=True)
    p.add_argument("--ctx", type=int, default=2048)
    p.add_argument("--prompt", type=int, default=512)
    a = p.parse_args()

    from qwenctl.backends import LoadOptions
    from qwenctl.backends.llamacpp import load

    workers = tuple(a.workers.split(","))
    session = load(Path(a.model), LoadOptions(n_ctx=a.ctx, n_gpu_layers=a.ngl, n_threads=1, split_mode="layer",
                                              tensor_split=tuple(1.0 for _ in workers), workers=workers))
    rng = random.Random(0)
    session.prefill([rng.randrange(session.n_vocab) for _ in range(a.prompt)])  # one full micro-batch through every device
    for _ in range(4):
        session.decode_one(rng.randrange(session.n_vocab))
    print("holding", flush=True)
    sys.stdin.readline()
    session.close()


if __name__ == "__main__":
    main()
