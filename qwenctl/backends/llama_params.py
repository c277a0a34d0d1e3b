"""Load parameters llama-cpp-python's ``Llama()`` cannot take, set on the params it hands to its internals.

``Llama.__init__`` fills ``llama_model_params`` and ``llama_context_params`` itself and passes them to
``_internals.LlamaModel`` and ``_internals.LlamaContext``; a field it has no argument for is set by wrapping
that class's ``__init__`` while the model loads (``llama_flash``: the auto flash-attention rule on the
context; ``llama_amx``: no extra buffer types on the model; ``op_offload``: llama.cpp's op offload on the context).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def while_loading(component: str, **fields: Any) -> Iterator[None]:
    """Set ``fields`` on the params handed to ``llama_cpp._internals.<component>`` ("LlamaModel", "LlamaContext")."""
    import llama_cpp._internals as internals

    cls = getattr(internals, component)
    original = cls.__init__

    def init(self, *args, params, **kwargs):
        for name, value in fields.items():
            setattr(params, name, value)
        original(self, *args, params=params, **kwargs)

    cls.__init__ = init
    try:
        yield
    finally:
        cls.__init__ = original


def op_offload(enabled: bool | None) -> contextlib.AbstractContextManager:
    """While loading, llama.cpp's op offload (a CPU layer's large batches run on a GPU it finds) as asked; None leaves
    llama.cpp's default (on). Neither ``Llama()`` before 0.3.x nor llama_cpp.server's settings take it."""
    return contextlib.nullcontext() if enabled is None else while_loading("LlamaContext", op_offload=enabled)
