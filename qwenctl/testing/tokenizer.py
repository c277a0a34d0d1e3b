"""The tokenizer the generated test models embed: Qwen2's byte-level BPE cut down to a few thousand
tokens (qwen2_tokenizer_head.json, made by derive_vocab.py), the ChatML specials at their real ids when
padded to the real vocabulary size, and Qwen2.5-Instruct's chat template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_DATA_DIR = Path(__file__).parent

# Qwen2's pre-tokenizer split (tokenizer.json of Qwen/Qwen2.5-*-Instruct; llama.cpp's "qwen2" pre-tokenizer).
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ChatML specials, in Qwen2.5's order; ids are 151643.. in the real vocabulary.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_REAL_FIRST_SPECIAL_ID = 151643

# GGUF token types (llama.cpp's llama_token_type)
_NORMAL, CONTROL, _USER_DEFINED = 1, 3, 4


@dataclass(frozen=True)
class Tokenizer:
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]
    merges: tuple[str, ...]
    chat_template: str
    eos_id: int  # <|im_end|>: where an Instruct reply stops
    pad_id: int  # <|endoftext|>
    source: str


@lru_cache(maxsize=1)
def _tokenizer_head() -> dict:
    return json.loads((_DATA_DIR / "qwen2_tokenizer_head.json").read_text(encoding="utf-8"))


def small_vocab_size() -> int:
    """Vocabulary size of the cut-down tokenizer: its BPE tokens plus the three specials."""
    return len(_tokenizer_head()["tokens"]) + len(SPECIAL_TOKENS)


def tokenizer(vocab_size: int | None = None) -> Tokenizer:
    """The cut-down Qwen2 tokenizer, padded to `vocab_size` entries when that is larger.

    Padded to a real size (151936), the specials sit at their real ids and the padding is
    ``[PADn]`` entries, as in llama.cpp's own qwen2 vocab file, so the output layer and the
    sampler work over exactly as many logits as the real model's.
    """
    head = _tokenizer_head()
    base = list(head["tokens"])
    size = vocab_size or small_vocab_size()
    if size < small_vocab_size():
        raise ValueError(f"vocab_size {size} is smaller than the tokenizer ({small_vocab_size()})")
    first_special = _REAL_FIRST_SPECIAL_ID if size >= _REAL_FIRST_SPECIAL_ID + len(SPECIAL_TOKENS) else len(base)
    tokens = base + [f"[PAD{i}]" for i in range(len(base), first_special)]
    types = [_NORMAL] * len(tokens)
    tokens += SPECIAL_TOKENS
    types += [CONTROL] * len(SPECIAL_TOKENS)
    tokens += [f"[PAD{i}]" for i in range(len(tokens), size)]
    types += [_USER_DEFINED] * (size - len(types))
    return Tokenizer(
        tokens=tuple(tokens),
        token_types=tuple(types),
        merges=tuple(head["merges"]),
        chat_template=head["chat_template"],
        eos_id=first_special + 2,
        pad_id=first_special,
        source=head["source"],
    )
