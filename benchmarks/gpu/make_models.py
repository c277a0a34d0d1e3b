"""Generate the shape-faithful models the GPU run measures (7B Q4_K_M and Q8_0, 0.5B Q4_K_M).

    python benchmarks/gpu/make_models.py CACHE_DIR [SIZE:QUANT[:INTERMEDIATE] ...]

The 7B F16 intermediate (15 GB) is written once, quantized to every 7B quant asked for, then
deleted. INTERMEDIATE Q8_0 writes Q8_0 blocks directly instead of F16 (32B:Q4_K_M:Q8_0: 35 GB where
the F16 copy, 65 GB, would not fit the GPU machine's 64 GiB disk); INTERMEDIATE_DIR (environment) writes
the intermediate there, e.g. /dev/shm (72B:Q4_K_M:Q4_0: a 41 GB Q4_0 in RAM, the 47 GB Q4_K_M on disk).
INTERMEDIATE direct writes the file itself with each matrix in its recipe type and no quantizer run
(72B:Q4_K_M:direct: its quantization alone ran past 7 minutes there), named "...-Q4_K_M-direct.gguf".
OFFICIAL_LAYOUT=1 (environment) writes the sizes whose official files store output.weight beside a tied
token_embd (the catalog's output_in_file: 0.5B-3B) or pad the feed-forward (feed_forward_length: the 72B's 29,696) in
that layout, named "...-official-..."; otherwise every size is written as the architecture is, tied where it ties, as
bartowski's and Ollama's files are.
Prints each file with its size and the seconds it took.
"""

import dataclasses
import os
import sys
import time
from pathlib import Path

from qwenctl.catalog import load_catalog
from qwenctl.testing import models

DEFAULT = ["7B:Q4_K_M", "7B:Q8_0", "0.5B:Q4_K_M"]


def official_shape(shape: models.Shape, size: str) -> models.Shape:
    """The shape Qwen's own files of this size are stored in (every quant of a size alike): output.weight beside a tied
    token_embd, the feed-forward padded."""
    official = load_catalog().model(size).weights_for("gguf", "q4_k_m")
    untie = shape.tie_word_embeddings and official.output_in_file
    if not (untie or official.feed_forward_length):
        return shape
    return dataclasses.replace(shape, name=f"{shape.name}-official", tie_word_embeddings=shape.tie_word_embeddings and not untie,
                               intermediate_size=official.feed_forward_length or shape.intermediate_size)


def main() -> None:
    cache = Path(sys.argv[1])
    wanted = sys.argv[2:] or DEFAULT
    by_size: dict[tuple[str, str], list[str]] = {}
    for item in wanted:
        size, quant, *via = item.split(":")
        by_size.setdefault((size, via[0] if via else "F16"), []).append(quant)
    for (size, via), quants in by_size.items():
        shape = models.qwen25_shape(size)
        if os.environ.get("OFFICIAL_LAYOUT"):
            shape = official_shape(shape, size)
        source = None
        for quant in quants:
            t0 = time.time()
            if via == "direct":  # each matrix in its recipe type, no quantizer run (a 72B Q4_K_M in the time its bytes take)
                path = models.gguf_model(cache, shape, quant, intermediate="direct")
            else:
                where = os.environ.get("INTERMEDIATE_DIR") if via != quant else None
                path = models.gguf_model(cache, shape, quant, keep_f16=True, intermediate=via, intermediate_dir=where)
                source = source or models.gguf_model(Path(where or cache), shape, via, intermediate=via)  # exists now
            print(f"{path.name} {path.stat().st_size} bytes {time.time() - t0:.0f} s", flush=True)
        if source is not None and via not in quants:
            source.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
