"""Inference engines installed: versions from package metadata (cheap), and whether
llama-cpp-python was built with GPU offload (asked of libllama directly, see snapshot.py).
The engines themselves are never imported here."""

from __future__ import annotations

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
