"""Regenerate ``qwen2_tokenizer_head.json``, the small tokenizer the generated test models embed.

Qwen2's byte-level BPE vocabulary is ordered by merge rank: token ``256 + i`` is the result
of merge ``i``. So its first ``256 + n`` tokens with its first ``n`` merges form a complete,
smaller BPE tokenizer that splits text exactly as Qwen2's would, only into more pieces.
This script cuts that head out of the vocab-only GGUF that llama.cpp ships
(``vendor/llama.cpp/models/ggml-vocab-qwen2.gguf`` in the llama-cpp-python sdist) and stores
it with Qwen2.5-Instruct's chat template (``models/templates/Qwen-Qwen2.5-7B-Instruct.jinja``
of the same source tree), so the repository needs neither file.

    python -m qwenctl.testing.derive_vocab VENDOR_LLAMA_CPP_DIR [N_MERGES]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def derive(llama_cpp_dir: Path, n_merges: int) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(llama_cpp_dir / "models" / "ggml-vocab-qwen2.gguf")
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()[:n_merges]
    for i, merge in enumerate(merges):  # the property the cut relies on
        assert merge.replace(" ", "") == tokens[256 + i], (i, merge)
    template = (llama_cpp_dir / "models" / "templates" / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text()
    return {
        "source": "llama-cpp-python 0.3.36 sdist, vendor/llama.cpp/models/ggml-vocab-qwen2.gguf (first 256+n tokens, "
        "first n merges) and vendor/llama.cpp/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja "
        "(Qwen/Qwen2.5-7B-Instruct tokenizer_config.json chat_template)",
        "tokens": tokens[: 256 + n_merges],
        "merges": merges,
        "chat_template": template,
    }


if __name__ == "__main__":
    src = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    out = Path(__file__).with_name("qwen2_tokenizer_head.json")
    out.write_text(json.dumps(derive(src, n), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {out}")
