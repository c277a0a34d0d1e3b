"""llama-cpp-python backend."""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("qwenctl.llama")

_log_callback = None  # keeps the ctypes callback alive for as long as llama.cpp may call it


def route_llama_logs() -> None:
    """Send llama.cpp's own log lines to the ``qwenctl.llama`` logger (shown with -vv) instead of stderr."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    # ggml_log_level of the vendored ggml: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line.
    # Warnings and errors show with -v (failures also become a QwenctlError); the chatter only with -vv.
    last = [logging.DEBUG]

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level != 5:
            last[0] = logging.INFO if level in (3, 4) else logging.DEBUG
        if log.isEnabledFor(last[0]):
            log.log(last[0], "%s", text.decode("utf-8", "replace").rstrip("\n"))

    _log_callback = _callback
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
