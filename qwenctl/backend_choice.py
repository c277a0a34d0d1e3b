"""Which engine runs the model here, and on which device, with the reason and what to install (the plan's
first step; docs/planning.md). MLX on Apple Silicon when mlx-lm is installed, llama.cpp on Metal otherwise;
llama.cpp with CUDA when an NVIDIA GPU llama.cpp's CUDA builds support is there and llama-cpp-python can offload;
the CPU otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware.facts import Absent, AppleSilicon, Backends, Cpu, Hardware, Nvidia, NvidiaGpu
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


def cuda_unsupported(gpu: NvidiaGpu, archs: tuple[int, ...] | None = None) -> str | None:
    """Why llama.cpp's CUDA backend cannot run on ``gpu``, or None where it can: a GPU older than any its CUDA
    builds have code for, older than every architecture the installed build was compiled for (``archs``,
    `Backends.llama_cpp_cuda_archs`: a build with CUDA 13 has none before Turing), or a module whose newest CUDA
    toolkit cannot compile it (speed_model.json `kernel_paths`, with the sources; devices.json `newest_cuda`).
    Such a build would abort at its first kernel ("no kernel image is available"), not fall back."""
    from qwenctl.device_speed import load_speed_model
    from qwenctl.hardware.engines import oldest_capability
    from qwenctl.hardware.nvidia_specs import gpu_spec_of, major_minor

    paths = load_speed_model()["kernel_paths"]
    oldest = tuple(paths["cuda_min_compute_capability"])
    if gpu.compute_capability and gpu.compute_capability < oldest:
        major, minor = gpu.compute_capability
        return (f"(compute capability {major}.{minor}) is older than any GPU llama.cpp's CUDA builds run on "
                f"({oldest[0]}.{oldest[1]}, Maxwell, with CUDA 12)")
    built = oldest_capability(archs)
    if built and gpu.compute_capability and built > gpu.compute_capability:
        major, minor = gpu.compute_capability
        cuda13 = _cuda13_oldest()
        toolkit = (f" with a CUDA 12 toolkit (CUDA 13 builds nothing older than compute capability {cuda13[0]}.{cuda13[1]})"
                   if gpu.compute_capability < cuda13 else "")
        return (f"(compute capability {major}.{minor}) has no code in the installed llama-cpp-python, built for compute "
                f"capability {built[0]}.{built[1]} and newer: rebuild it for this GPU{toolkit}, "
                f"{INSTALL['llama-cuda-arch'].format(arch=f'{major}{minor}')}")
    newest = major_minor((gpu_spec_of(gpu) or {}).get("newest_cuda"))
    needed = tuple(paths["cuda_min_toolkit"])
    if newest and newest < needed:
        return (f"has CUDA {newest[0]}.{newest[1]} at most (its last JetPack), and llama.cpp's CUDA backend needs CUDA "
                f"{needed[0]}.{needed[1]} or newer")
    return None


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

    archs = b.llama_cpp_cuda_archs if b is not None and has_llama else None
    unsupported = [(g.name, why) for g in hw.gpus if (why := cuda_unsupported(g, archs))]
    if not has_llama:
        warnings.append(
            f"llama-cpp-python is not installed: {INSTALL['llama']}"
            + (f", then for the NVIDIA GPU: {cuda_install(hw)}" if len(unsupported) < len(hw.gpus) else "")
        )
    if apple:
        return BackendChoice("llama.cpp", "metal", "llama.cpp on Metal (Apple Silicon" + (", mlx-lm not installed)" if want is None else ")"), tuple(warnings))
    if hw.gpus and len(unsupported) == len(hw.gpus):
        name, why = unsupported[0]
        warnings.append(f"the {name} {why}: planned on the CPU")
        return BackendChoice("llama.cpp", "cpu", "llama.cpp on the CPU (no GPU llama.cpp's CUDA builds support)", tuple(warnings))
    if unsupported:
        warnings.append(f"the {unsupported[0][0]} {unsupported[0][1]}: hide it with CUDA_VISIBLE_DEVICES so llama.cpp "
                        "does not try it")
    if hw.gpus:
        offload = b.llama_cpp_gpu_offload if b is not None else None
        if has_llama and offload is False:
            if archs:  # CUDA code, but its runtime found no device
                driver = hw.nvidia.cuda_driver_version if isinstance(hw.nvidia, Nvidia) else None
                warnings.append(
                    "the installed llama-cpp-python has CUDA, but its CUDA runtime finds no GPU: most often the NVIDIA "
                    "driver is older than the CUDA it was built with" + (f" (this driver's is CUDA {driver})" if driver else "")
                    + ": update the driver, or rebuild llama-cpp-python with a CUDA toolkit no newer than the driver's, "
                    + cuda_install(hw))
            else:
                warnings.append("the installed llama-cpp-python was built without GPU offload: to use the GPU, reinstall "
                                "it with " + cuda_install(hw))
            return BackendChoice("llama.cpp", "cpu", f"llama.cpp on the CPU (llama-cpp-python cannot offload to the {hw.gpus[0].name})", tuple(warnings))
        return BackendChoice("llama.cpp", "cuda", f"llama.cpp with CUDA on the {hw.gpus[0].name}, as many layers as fit", tuple(warnings))
    return BackendChoice("llama.cpp", "cpu", "llama.cpp on the CPU (no supported GPU)", tuple(warnings + unused_gpus(hw)))


def cuda_install(hw: Hardware) -> str:
    """The command that builds llama-cpp-python with CUDA, and the toolkit it needs where a GPU is older than what
    CUDA 13 builds for (speed_model.json `kernel_paths.cuda13_min_compute_capability`)."""
    newest_only = _cuda13_oldest()
    old = [(g.name, g.compute_capability) for g in hw.gpus if g.compute_capability and g.compute_capability < newest_only]
    if not old:
        return INSTALL["llama-cuda"]
    name, (major, minor) = old[0]
    return f"{INSTALL['llama-cuda']}, with a CUDA 12 toolkit: CUDA 13 builds nothing for the {name} (compute capability {major}.{minor})"


def _cuda13_oldest() -> tuple[int, ...]:
    """The oldest compute capability CUDA 13 builds for (speed_model.json `kernel_paths`, with its source)."""
    from qwenctl.device_speed import load_speed_model

    return tuple(load_speed_model()["kernel_paths"]["cuda13_min_compute_capability"])


def unused_gpus(hw: Hardware) -> list[str]:
    """What a plan on the CPU leaves unused, and why: the display GPUs the OS lists (hardware/drm.py) that qwenctl
    cannot plan on, an AMD or Intel GPU, an NVIDIA GPU whose driver does not expose it to NVML, a macOS virtual
    machine's paravirtual GPU."""
    from qwenctl.hardware.drm import COMPUTE_VENDORS, describe

    notes = []
    if hw.system == "Darwin" and isinstance(hw.cpu, Cpu) and hw.cpu.virtual_machine:
        notes.append("the GPU of this macOS virtual machine, Apple's paravirtual device, is not used: Metal compute "
                     "cannot be trusted there (docs/detect.md)")
    for g in hw.display_gpus:
        if g.vendor not in COMPUTE_VENDORS or (g.vendor == "NVIDIA" and hw.gpus):
            continue
        what = describe(g)
        if g.vendor != "NVIDIA":
            notes.append(f"the {what} is not used: qwenctl runs llama.cpp with CUDA (NVIDIA), on Metal or MLX (Apple) "
                         "or on the CPU; llama.cpp's own Vulkan or ROCm builds can run on it, outside qwenctl")
        elif g.driver == "nvidia" or not g.from_drm:  # Windows names no driver: NVML is the question
            why = hw.nvidia.reason if isinstance(hw.nvidia, Absent) else "it listed no GPU"
            has = "has NVIDIA's driver but " if g.driver else ""
            notes.append(f"the {what} {has}is not seen by NVML ({why}): qwenctl plans on an NVIDIA GPU through NVML, "
                         "which NVIDIA's driver installs")
        else:
            notes.append(f"the {what} does not run NVIDIA's driver: install it (CUDA needs it) and qwenctl plans on the GPU")
    return notes
