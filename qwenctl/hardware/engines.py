"""Inference engines installed: versions from package metadata (cheap), and whether
llama-cpp-python was built with GPU offload (asked of libllama directly). The engines
themselves are never imported here. ``probe`` reads these facts through a ``Source``; the
functions below are what ``LiveSource`` answers with on this machine.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from qwenctl.hardware.cpu import llama_cpu_flags
from qwenctl.hardware.facts import Absent, Backends
from qwenctl.hardware.snapshot import Source

NOT_INSTALLED = "not installed"


def probe(source: Source) -> Backends:
    llama = source.package_version("llama-cpp-python")
    mlx = source.package_version("mlx")
    mlx_lm = source.package_version("mlx-lm")
    info = source.llama_system_info() if llama else None
    return Backends(
        llama_cpp=llama or Absent(NOT_INSTALLED),
        llama_cpp_gpu_offload=source.llama_supports_gpu_offload() if llama else None,
        llama_cpp_rpc=source.llama_supports_rpc() if llama else None,
        llama_cpp_cuda_archs=cuda_archs(info),
        llama_cpp_cpu_flags=llama_cpu_flags(info) or None,
        mlx=mlx or Absent(NOT_INSTALLED),
        mlx_lm=mlx_lm or Absent(NOT_INSTALLED),
        mlx_default_device=source.mlx_default_device() if mlx else None,
    )


def cuda_archs(system_info: str | None) -> tuple[int, ...] | None:
    """The CUDA architectures in ``llama_print_system_info`` ("CUDA : ARCHS = 500,610,750 | USE_GRAPHS = 1 | ...":
    ggml-cuda's `ARCHS` feature, its __CUDA_ARCH_LIST__), or None where the build has no CUDA backend or says none."""
    import re

    found = re.search(r"CUDA : ARCHS = ([0-9][0-9,]*)", system_info or "")
    return tuple(int(a) for a in found.group(1).split(",") if a) if found else None


def arch_capability(arch: int) -> tuple[int, int]:
    """The compute capability a __CUDA_ARCH_LIST__ number stands for: 610 is 6.1, 1200 is 12.0."""
    return arch // 100, arch % 100 // 10


def oldest_capability(archs: tuple[int, ...] | None) -> tuple[int, int] | None:
    """The oldest compute capability a build has CUDA code for (`cuda_archs`), or None where it names none."""
    return arch_capability(min(archs)) if archs else None


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


def source_tree_version(name: str) -> str | None:
    """The version of llama-cpp-python importable from a source tree on sys.path (PYTHONPATH at its checkout, its
    libllama built apart and named by LLAMA_CPP_LIB_PATH), which has no dist-info folder: its ``__version__`` line,
    read without importing it. None for another package, or where it is not importable."""
    if normalize(name) != "llama-cpp-python":
        return None
    import importlib.util
    import re

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin or not spec.origin.endswith("__init__.py"):
        return None
    try:
        text = Path(spec.origin).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return found.group(1) if found else None


_LLAMA_LOG_SINK: Any = None


def llama_supports_gpu_offload() -> bool | None:
    """Whether the installed libllama can offload to a GPU of this machine, asked of libllama itself through ctypes.

    ``import llama_cpp`` costs 85-110 ms here (it pulls in numpy and builds every binding),
    which alone would break detect's start-up budget; loading the shared library and calling
    this one function costs about 4 ms on a CPU build (benchmarks/detect_startup.py). On a
    CUDA build the call also initialises the CUDA backend: that is the answer's real cost.
    llama.cpp's log callback is silenced first so backend start-up lines do not reach stderr; when
    llama_cpp is already imported (a model is or was loaded here: its log callback routes llama.cpp's
    lines to the loader), the answer comes from it and the callback stays.

    A build with the RPC backend answers true to ``llama_supports_gpu_offload`` on any machine (src/llama.cpp:
    a GPU device, an integrated GPU, *or* RPC support), so there the answer is whether ggml has a GPU or
    integrated-GPU device of its own (not an attached worker's): what the call meant before RPC was built in.
    """
    lib = _libllama()
    if lib is None:
        return None
    try:
        lib.llama_supports_gpu_offload.restype = ctypes.c_bool
        if not lib.llama_supports_gpu_offload():
            return False
        if not _llama_supports_rpc(lib):
            return True
        return _local_gpu_device(lib)
    except (OSError, AttributeError):  # a library that will not load, or an older ABI
        return None


def llama_supports_rpc() -> bool | None:
    """Whether the installed libllama was built with llama.cpp's RPC backend (``qwenctl worker``, ``--workers``)."""
    lib = _libllama()
    return _llama_supports_rpc(lib) if lib is not None else None


def llama_system_info() -> str | None:
    """libllama's ``llama_print_system_info``: each backend's features, the CPU's as llama.cpp uses them
    ("CPU : SSE3 = 1 | ... | AVX2 = 1 | ..."): the instruction sets it was built for, or the variant a build with
    loadable CPU backends chose for this CPU. Where the OS has no cpuinfo (Windows), the CPU probe's ISA flags."""
    lib = _libllama()
    if lib is None:
        return None
    try:
        lib.llama_print_system_info.restype = ctypes.c_char_p
        info = lib.llama_print_system_info()
    except (OSError, AttributeError):
        return None
    return info.decode("utf-8", "replace") if info else None


def _llama_supports_rpc(lib: Any) -> bool:
    ask = getattr(lib, "llama_supports_rpc", None)
    if ask is None:  # a libllama older than the RPC backend
        return False
    ask.restype = ctypes.c_bool
    return bool(ask())


def _local_gpu_device(lib: Any) -> bool | None:
    """A GPU or integrated-GPU device in ggml's registry that is not an RPC worker's (ggml-backend.h)."""
    ggml = _ggml_of(lib)
    if ggml is None:
        return None
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    ggml.ggml_backend_dev_type.restype = ctypes.c_int
    ggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_reg_name.restype = ctypes.c_char_p
    ggml.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    for i in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(i)
        if ggml.ggml_backend_dev_type(dev) in (1, 2) and ggml.ggml_backend_reg_name(ggml.ggml_backend_dev_backend_reg(dev)) != b"RPC":
            return True  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU
    return False


def _ggml_of(lib: Any) -> Any:
    """libggml as libllama links it: the already-loaded copy (a wheel ships libggml.so, .so.0 and .so.0.x.y as
    separate files, each with its own device registry; the soname one, libggml.so.0, is libllama's)."""
    path = getattr(lib, "_name", None)
    if not path:
        return None
    lib_dir = Path(path).parent
    names = sorted(p.name for p in lib_dir.glob("libggml.so.*") if p.name[len("libggml.so."):].isdigit())
    for name in (*names, "libggml.so", "libggml.dylib", "ggml.dll"):
        if (lib_dir / name).exists():
            try:
                return ctypes.CDLL(str(lib_dir / name))
            except OSError:
                return None
    return None


def _libllama() -> Any:
    """libllama: the llama_cpp package's own handle when it is imported, else loaded by path with its log silenced."""
    import importlib.util
    import sys

    loaded = sys.modules.get("llama_cpp")
    if loaded is not None:  # an engine is running in this process: ask it, and leave its log callback alone
        return getattr(loaded.llama_cpp, "_lib", None) if hasattr(loaded, "llama_cpp") else None
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    # where llama_cpp itself looks (llama_cpp.py: LLAMA_CPP_LIB_PATH, else the package's lib/): a libllama built apart
    lib_dir = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(next(iter(spec.submodule_search_locations))) / "lib")
    candidates = sorted(lib_dir.glob("libllama.*")) + sorted(lib_dir.glob("llama.dll"))
    if not candidates:
        return None
    try:
        lib = ctypes.CDLL(str(candidates[0]))
        global _LLAMA_LOG_SINK
        if _LLAMA_LOG_SINK is None:
            log_callback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
            _LLAMA_LOG_SINK = log_callback(lambda level, text, user_data: None)  # kept alive: C holds it
        lib.llama_log_set(_LLAMA_LOG_SINK, None)
        return lib
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
