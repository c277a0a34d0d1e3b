"""Load parameters llama-cpp-python's ``Llama()`` cannot take, set on the params it hands to its internals.

``Llama.__init__`` fills ``llama_model_params`` and ``llama_context_params`` itself and passes them to
``_internals.LlamaModel`` and ``_internals.LlamaContext``; a field it has no argument for is set by wrapping
that class's ``__init__`` while the model loads (``llama_flash``: the auto flash-attention rule on the
context; ``llama_amx``: no extra buffer types on the model; ``op_offload``: llama.cpp's op offload on the context;
``cpu_only``: no GPU device on the model).
"""

from __future__ import annotations

import contextlib
import ctypes
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


@contextlib.contextmanager
def cpu_only(enabled: bool) -> Iterator[None]:
    """While loading, no device but the CPU joins the model (``llama_model_params.devices``: an empty, NULL-terminated
    list). Left to itself llama.cpp adds every GPU it finds, and its context starts a backend on each, a CUDA context of
    hundreds of MiB, even with no layer there: a plan on the CPU, made because the GPU's memory is taken, would fail to
    load or squeeze what holds the GPU."""
    if not enabled:
        yield
        return
    empty = (ctypes.c_void_p * 1)()  # kept alive until the load returns: llama.cpp reads it then
    with while_loading("LlamaModel", devices=ctypes.addressof(empty)):
        yield
