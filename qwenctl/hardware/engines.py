"""Inference engines installed: versions from package metadata (cheap), and whether
llama-cpp-python was built with GPU offload (asked of libllama directly). The engines
themselves are never imported here. ``probe`` reads these facts through a ``Source``; the
functions below are what ``LiveSource`` answers with on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qwenctl.hardware.facts import Absent, Backends
from qwenctl.hardware.snapshot import Source

NOT_INSTALLED = "not installed"


def probe(source: Source) -> Backends:
    llama = source.package_version("llama-cpp-python")
    mlx = source.package_version("mlx")
    mlx_lm = source.package_version("mlx-lm")
    return Backends(
        llama_cpp=llama or Absent(NOT_INSTALLED),
        llama_cpp_gpu_offload=source.llama_supports_gpu_offload() if llama else None,
        mlx=mlx or Absent(NOT_INSTALLED),
        mlx_lm=mlx_lm or Absent(NOT_INSTALLED),
        mlx_default_device=source.mlx_default_device() if mlx else None,
    )


_VERSIONS: dict[str, str] | None = None


def normalize(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """{normalized name: version} from the *.dist-info / *.egg-info folder names on sys.path.

    What importlib.metadata.version() answers, from one directory listing per path entry:
    importing importlib.metadata and asking it once per package cost ~10 ms of detect's
    start-up; the folder names ("llama_cpp_python-0.3.36.dist-info") already say it.
    """
    global _VERSIONS
    if _VERSIONS is None:
        import sys

        _VERSIONS = {}
        for entry in sys.path:
            try:
                names = os.listdir(entry or ".")
            except OSError:
                continue
            for folder in names:
                for suffix in (".dist-info", ".egg-info"):
                    if folder.endswith(suffix):
                        name, _, rest = folder[: -len(suffix)].partition("-")
                        if rest:
                            _VERSIONS.setdefault(normalize(name), rest.split("-")[0])
    return _VERSIONS


_LLAMA_LOG_SINK: Any = None


def llama_supports_gpu_offload() -> bool | None:
    """Ask libllama itself, through ctypes, without importing the ``llama_cpp`` package.

    ``import llama_cpp`` costs 85-110 ms here (it pulls in numpy and builds every binding),
    which alone would break detect's start-up budget; loading the shared library and calling
    this one function costs about 4 ms on a CPU build (benchmarks/detect_startup.py). On a
    CUDA build the call also initialises the CUDA backend: that is the answer's real cost.
    llama.cpp's log callback is silenced first so backend start-up lines do not reach stderr; when
    llama_cpp is already imported (a model is or was loaded here: its log callback routes llama.cpp's
    lines to the loader), the answer comes from it and the callback stays.
    """
    import ctypes
    import importlib.util
    import sys

    loaded = sys.modules.get("llama_cpp")
    if loaded is not None:  # an engine is running in this process: ask it, and leave its log callback alone
        ask = getattr(loaded, "llama_supports_gpu_offload", None)
        return bool(ask()) if ask is not None else None
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    lib_dir = Path(next(iter(spec.submodule_search_locations))) / "lib"
    candidates = sorted(lib_dir.glob("libllama.*")) + sorted(lib_dir.glob("llama.dll"))
    if not candidates:
        return None
    try:
        lib = ctypes.CDLL(str(candidates[0]))
        global _LLAMA_LOG_SINK
        log_callback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
        _LLAMA_LOG_SINK = log_callback(lambda level, text, user_data: None)  # kept alive: C holds it
        lib.llama_log_set(_LLAMA_LOG_SINK, None)
        lib.llama_supports_gpu_offload.restype = ctypes.c_bool
        return bool(lib.llama_supports_gpu_offload())
    except (OSError, AttributeError):  # a library that will not load, or an older ABI
        return None


def mlx_default_device_of(system: str, package_version: Any) -> str | None:
    """MLX's default device, importing mlx only where the answer can differ.

    On macOS the answer depends on Metal, so mlx.core is imported (20-40 ms, only when mlx is
    installed). On Linux the CPU wheel (`mlx-cpu`, what `mlx[cpu]` installs) has no GPU
    backend, so its default device is the CPU without asking; a CUDA build is asked.
    """
    if package_version("mlx") is None:
        return None
    if system == "Linux" and package_version("mlx-cuda") is None:
        return "cpu"
    try:
        import mlx.core as mx
    except ImportError:
        return None
    return "gpu" if mx.default_device() == mx.gpu else "cpu"
