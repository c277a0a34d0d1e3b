"""Flash attention by llama.cpp's own rule ("auto"), which llama-cpp-python's Llama() cannot ask for.

llama.cpp's tools (llama-bench, llama-cli, llama-server) default to ``-fa auto``:
LLAMA_FLASH_ATTN_TYPE_AUTO in ``llama_context_params.flash_attn_type``. While building the context
llama.cpp checks that the device holding each layer's KV cache runs FLASH_ATTN_EXT (the CPU always
does) and enables it, logging "Flash Attention enabled", or logs "... not supported, set to disabled".
llama-cpp-python 0.3.36 binds the enum (llama_cpp.py) but ``Llama(flash_attn: bool)`` maps only
True/False to ENABLED/DISABLED (llama.py) before it creates the context inside ``__init__``.

``flash_attn_mode(None)`` therefore sets AUTO on the params handed to ``_internals.LlamaContext`` (``llama_params``)
while a model loads (``Llama`` in ``load``, and llama_cpp.server's ``create_app`` in ``serve``);
True/False pass through untouched. ``resolved(lines)`` reads llama.cpp's answer from its log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

ENABLED_LINE = "Flash Attention enabled"
DISABLED_LINE = "Flash Attention not supported, set to disabled"


@contextlib.contextmanager
def flash_attn_mode(flash_attn: bool | None) -> Iterator[None]:
    """While loading: None = llama.cpp's auto rule; True/False = what Llama(flash_attn=...) does anyway."""
    if flash_attn is not None:
        yield
        return
    import llama_cpp

    from qwenctl.backends.llama_params import while_loading

    with while_loading("LlamaContext", flash_attn_type=llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO):
        yield


def resolved(asked: bool | None, log_lines: Sequence[str]) -> bool | None:
    """What llama.cpp used: the asked value, or for auto the last verdict in its log (None if it said none)."""
    if asked is not None:
        return asked
    for line in reversed(log_lines):
        if ENABLED_LINE in line:
            return True
        if DISABLED_LINE in line:
            return False
    return None
