"""Shared by the run/chat tests: generated models, and a ChatUI fed from a script.

The models are real qwen2 GGUFs from qwenctl.testing.models, cached in pytest's cache
directory under a name keyed by their shape, so the suite generates each one once.
"""

from __future__ import annotations

import io
from pathlib import Path

from qwenctl.render.chat import ChatUI, make_console
from qwenctl.testing.models import Shape, gguf_model, tiny_gguf

# Big enough that a reply takes seconds on a laptop CPU (about 300 tok/s on 2 cores) and rarely
# ends on its own, so a test can press Ctrl-C in the middle of one; still only 62 MB.
SLOW = Shape(
    "slow",
    hidden_size=512,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=2,
    intermediate_size=2048,
    vocab_size=0,
    max_position_embeddings=4096,
)


def model_cache(config) -> Path:
    return Path(config.cache.mkdir("qwenctl-test-models"))


def tiny_model(config) -> Path:
    return tiny_gguf(model_cache(config))


def slow_model(config) -> Path:
    return gguf_model(model_cache(config), SLOW, "F16")


class ScriptedUI(ChatUI):
    """The real ChatUI, with the keyboard replaced by a list of lines and the screen by a buffer.

    `on_token(ui, n)` runs after the n-th streamed piece of a reply (a test presses Ctrl-C there).
    """

    def __init__(self, lines, on_token=None):
        self.out = io.StringIO()
        self.lines = list(lines)
        self.on_token = on_token
        self.pieces = 0
        super().__init__(console=make_console(self.out), read=self._next)

    def _next(self, prompt: str) -> str:
        self.out.write(prompt)
        if not self.lines:
            raise EOFError
        line = self.lines.pop(0)
        self.out.write(line + "\n")
        return line

    def reply_text(self, text: str) -> None:
        super().reply_text(text)
        self.pieces += 1
        if self.on_token:
            self.on_token(self, self.pieces)

    @property
    def text(self) -> str:
        return self.out.getvalue()
