"""Token ids to streamed text: each token's bytes looked up once, decoded incrementally, stop strings held back.

Why not ``Llama.detokenize`` per token: that is a ctypes round trip and a new bytes object per
token, and re-decoding the held bytes of a split UTF-8 character on every token costs more as a
reply grows. Here a token's bytes come from a per-vocabulary cache, an incremental UTF-8 decoder
keeps the partial character, and only text that could still become a stop string is held.
"""

from __future__ import annotations

import codecs
import ctypes
from collections.abc import Sequence


class Pieces:
    """Each token's bytes as llama.cpp renders it (special tokens as empty text), cached per id."""

    def __init__(self, vocab):
        import llama_cpp as lc

        self._lc = lc
        self._vocab = vocab
        self._cache: dict[int, bytes] = {}
        self._buf = ctypes.create_string_buffer(256)

    def __call__(self, token: int) -> bytes:
        piece = self._cache.get(token)
        if piece is None:
            n = self._lc.llama_token_to_piece(self._vocab, token, self._buf, len(self._buf), 0, False)
            piece = self._buf.raw[: max(n, 0)]
            self._cache[token] = piece
        return piece


class TextStream:
    """The text of one reply, token by token; `stopped` once a stop string appeared (it is not emitted)."""

    def __init__(self, pieces: Pieces, stop: Sequence[str] = ()):
        self._pieces = pieces
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._held = ""
        self.stopped = False

    def push(self, token: int) -> str:
        """The text that can be shown after `token` (may be empty while a character or a stop string is pending)."""
        text = self._decoder.decode(self._pieces(token))
        if not self._stop:
            return text
        return self._release(self._held + text)

    def finish(self) -> str:
        """What is left once the reply ends (held text that never became a stop string)."""
        text = self._decoder.decode(b"", final=True)
        if self.stopped:
            return ""
        rest = self._held + text
        self._held = ""
        if self._stop:
            cut = min((i for i in (rest.find(s) for s in self._stop) if i >= 0), default=-1)
            if cut >= 0:
                self.stopped = True
                return rest[:cut]
        return rest

    def _release(self, text: str) -> str:
        cut = min((i for i in (text.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = 0  # the longest end of `text` that begins some stop string
        for s in self._stop:
            for n in range(min(len(s) - 1, len(text)), keep, -1):
                if text.endswith(s[:n]):
                    keep = n
                    break
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]
