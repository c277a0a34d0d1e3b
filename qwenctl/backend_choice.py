"""Which engine runs the model here, and on which device, with the reason and what to install (the plan's
first step; docs/planning.md). MLX on Apple Silicon when mlx-lm is installed, llama.cpp on Metal otherwise;
llama.cpp with CUDA when an NVIDIA GPU llama.cpp's CUDA builds support is there and llama-cpp-python can offload;
the CPU otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware.facts import AppleSilicon, Backends, Hardware
from qwenctl.install import INSTALL


@dataclass(frozen=True)
class BackendChoice:
    """The engine and device, why, and what to install first."""

    backend: str
    device: str
    reason: str
    warnings: tuple[str, ...]


def _installed(value) -> bool:
    return isinstance(value, str)


def choose_backend(hw: Hardware, want: str | None = None) -> BackendChoice:
    """Backend and device for this machine (`want`: the backend asked for, None to choose), with the
    reason and what to install."""
    b = hw.backends if isinstance(hw.backends, Backends) else None
    has_llama = b is not None and _installed(b.llama_cpp)
    has_mlx = b is not None and _installed(b.mlx_lm)
    apple = isinstance(hw.apple, AppleSilicon)
    if want not in (None, "llama.cpp", "mlx"):
        raise QwenctlError(f"unknown backend {want!r}", hint="choose llama.cpp or mlx", code=ExitCode.BAD_INPUT)
    warnings: list[str] = []

    if want == "mlx" or (want is None and apple and has_mlx):
        if not apple:
            raise QwenctlError(
                "the mlx backend needs Apple Silicon (Metal); this machine has none",
                hint="use --backend llama.cpp",
                code=ExitCode.NO_FIT,
            )
        if not has_mlx:
            warnings.append(f"mlx-lm is not installed: {INSTALL['mlx']}")
        return BackendChoice("mlx", "metal", "mlx on the Apple GPU (Apple Silicon, mlx-lm " + ("installed" if has_mlx else "requested") + ")", tuple(warnings))

    if not has_llama:
        warnings.append(
            f"llama-cpp-python is not installed: {INSTALL['llama']}"
            + (f", then for the NVIDIA GPU: {INSTALL['llama-cuda']}" if hw.gpus else "")
        )
    if apple:
        return BackendChoice("llama.cpp", "metal", "llama.cpp on Metal (Apple Silicon" + (", mlx-lm not installed)" if want is None else ")"), tuple(warnings))
    from qwenctl.speed import load_speed_model

    # the oldest GPUs llama.cpp's CUDA builds have code for (speed_model.json kernel_paths, with the source)
    oldest = tuple(load_speed_model()["kernel_paths"]["cuda_min_compute_capability"])
    too_old = [(g.name, g.compute_capability) for g in hw.gpus if g.compute_capability and g.compute_capability < oldest]
    if hw.gpus and len(too_old) == len(hw.gpus):
        name, (major, minor) = too_old[0]
        warnings.append(f"the {name} (compute capability {major}.{minor}) "
                        f"is older than any GPU llama.cpp's CUDA builds run on ({oldest[0]}.{oldest[1]}, Maxwell, "
                        "with CUDA 12): planned on the CPU")
        return BackendChoice("llama.cpp", "cpu", "llama.cpp on the CPU (no GPU llama.cpp's CUDA builds support)", tuple(warnings))
    if too_old:
        warnings.append(f"the {too_old[0][0]} is older than any GPU llama.cpp's CUDA builds run on: hide it with "
                        "CUDA_VISIBLE_DEVICES so llama.cpp does not try it")
    if hw.gpus:
        offload = b.llama_cpp_gpu_offload if b is not None else None
        if has_llama and offload is False:
            warnings.append(
                "the installed llama-cpp-python was built without GPU offload: to use the GPU, reinstall it with "
                + INSTALL["llama-cuda"]
            )
            return BackendChoice("llama.cpp", "cpu", f"llama.cpp on the CPU (llama-cpp-python cannot offload to the {hw.gpus[0].name})", tuple(warnings))
        return BackendChoice("llama.cpp", "cuda", f"llama.cpp with CUDA on the {hw.gpus[0].name}, as many layers as fit", tuple(warnings))
    return BackendChoice("llama.cpp", "cpu", "llama.cpp on the CPU (no supported GPU)", tuple(warnings))
