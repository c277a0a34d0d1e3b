"""llama.cpp's AMX kernels, when GCC before 13 compiled them, crash: such a build loads without extra buffer types.

ggml puts a quantized weight into its AMX buffer where the CPU has AMX (Sapphire Rapids and later Xeons)
and the library was built for it (a native build on such a machine: llama-cpp-python's default). Before
multiplying, each thread writes a 64-byte tile configuration on its stack and loads it with
``_tile_loadconfig`` (ggml-cpu/amx/mmq.cpp, ``ggml_tile_config_init``). GCC up to 12 declares that
intrinsic as inline asm that reads 8 bytes (``"m" (*((const void **)__config))``, amxtileintrin.h), so
at -O3 it drops the stores of the other 56: ``ldtilecfg`` loads stack garbage and the first prompt batch
dies with a general protection fault (SIGSEGV in ``ggml_backend_amx_mul_mat``). Seen on the development
VM (Intel Xeon with amx_int8, Debian 12's GCC 12.2.0, llama-cpp-python 0.3.36 built by pip); reported
upstream as ggml-org/llama.cpp#20824, ollama/ollama#17006 and stanfordnlp/dspy#10079. GCC 13's header
calls ``__builtin_ia32_ldtilecfg``, which reads all 64 bytes.

``llama_model_params.use_extra_bufts = False`` keeps every weight in the plain CPU buffer: no AMX (and no
repacking, so prompt processing is slower), but no crash. The build is judged from what the library says
of itself: llama.cpp's system info ("AMX_INT8 = 1") and the compiler named in libggml-cpu's ELF .comment.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

FIXED_IN_GCC = 13
# the weight types ggml's AMX buffer takes (ggml-cpu/amx/common.h, qtype_has_amx_kernels); a file without them
# (F16, F32, Q5_0, ...) never reaches the kernels, and keeps its repacking
AMX_TYPES = frozenset({"Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"})
REBUILD_HINT = ("rebuild llama-cpp-python with GCC 13 or newer (CC=gcc-13 CXX=g++-13 pip install --force-reinstall "
                "--no-cache-dir llama-cpp-python) to use AMX")
_GCC = re.compile(rb"GCC: \([^)]*\) (\d+)\.(\d+)")


def miscompiled(system_info: str, compiler_comments: bytes) -> str | None:
    """Why this build's AMX kernels cannot run (None: they can, or the build has none).

    ``system_info``: llama.cpp's ``llama_print_system_info()``; ``compiler_comments``: the bytes of the CPU
    backend library, whose .comment section names each compiler that built a part of it (the C runtime's
    start files too, so a GCC 13 build on a GCC 12 system is judged by the older one: safe, never a crash).
    """
    if "AMX_INT8 = 1" not in system_info:
        return None
    versions = [(int(major), int(minor)) for major, minor in _GCC.findall(compiler_comments)]
    old = min(versions, default=None)
    if old is None or old[0] >= FIXED_IN_GCC:
        return None
    return (f"this llama.cpp's AMX kernels were compiled by GCC {old[0]}.{old[1]}, which miscompiles them "
            f"(they crash); weights stay unrepacked in the plain CPU buffer, so prompts run slower; {REBUILD_HINT}")


def _cpu_library() -> Path | None:
    """The ggml CPU backend this process loaded (Linux: from /proc/self/maps)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)  # address, perms, offset, device, inode[, path]
        if len(fields) == 6 and Path(fields[5]).name.startswith("libggml-cpu"):
            return Path(fields[5])
    return None


@functools.lru_cache(maxsize=1)
def build_problem() -> str | None:
    """The loaded llama.cpp's AMX verdict (see ``miscompiled``); None where it cannot be told (not Linux)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    library = _cpu_library()
    if library is None:
        return None
    try:
        return miscompiled(info, library.read_bytes())
    except OSError:
        return None


@contextlib.contextmanager
def safe_buffers(weight_types: Iterable[str]) -> Iterator[str | None]:
    """While loading a file with these ggml weight types ("Q4_K", ...): no extra buffer types where the AMX
    kernels would crash; yields why (None: nothing changed).

    llama-cpp-python's ``Llama()`` has no argument for ``use_extra_bufts`` (``llama_params.while_loading``).
    """
    problem = build_problem() if AMX_TYPES.intersection(weight_types) else None
    if problem is None:
        yield None
        return
    from qwenctl.backends.llama_params import while_loading

    with while_loading("LlamaModel", use_extra_bufts=False):
        yield problem
