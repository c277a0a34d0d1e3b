"""The CPU as the installed llama.cpp build uses it: a build runs the kernels it was compiled for, not the best the
CPU has (llama.cpp's arm64 Docker images of 2025 were built for a generic armv8-a, a CPU wheel may be built for AVX2),
so the speed model prices the instruction sets both name, and the plan and `detect` say what the build leaves out.
The build's features are llama.cpp's own system info (`Backends.llama_cpp_cpu_flags`)."""

from __future__ import annotations

from dataclasses import replace

from qwenctl.hardware.cpu import LLAMA_CPU_FEATURES
from qwenctl.hardware.cpu_specs import X86_ARCHES
from qwenctl.hardware.facts import Backends, Cpu, Hardware
from qwenctl.install import INSTALL

REBUILD_HINT = f"rebuild llama-cpp-python for this CPU: {INSTALL['llama-native']}"


def _build_flags(hw: Hardware) -> tuple[str, ...]:
    """The CPU features the installed llama.cpp was compiled for (its system info); () where not known."""
    return (hw.backends.llama_cpp_cpu_flags if isinstance(hw.backends, Backends) else None) or ()


def without_dot_products(hw: Hardware) -> bool:
    """Whether the llama.cpp installed here was built without the dot-product instructions the CPU has: an Arm CPU
    with SDOT (cpuinfo's `asimddp`) under a build whose system info names NEON but not DOTPROD, as one compiled for a
    generic armv8-a is (llama.cpp's arm64 Docker images of 2025, `GGML_CPU_ARM_ARCH=armv8-a`). False where either
    side is not known."""
    flags = _build_flags(hw)
    return isinstance(hw.cpu, Cpu) and "dotprod" in hw.cpu.flags and "neon" in flags and "dotprod" not in flags


def as_built(cpu: Cpu, hw: Hardware) -> tuple[Cpu, tuple[str, ...]]:
    """An x86 CPU as the installed llama.cpp's kernels use it, and the instruction sets its build leaves out: the
    build runs the kernels it was compiled for, not the CPU's best (a wheel built for AVX2 runs AVX2 kernels on an
    AVX-512 core), so the core is priced by the flags both have, where the build says (llama.cpp's system info)."""
    built = _build_flags(hw)
    if not built or cpu.arch not in X86_ARCHES:
        return cpu, ()
    missing = tuple(f for f in cpu.flags if f in LLAMA_CPU_FEATURES.values() and f not in built)
    return (replace(cpu, flags=tuple(f for f in cpu.flags if f not in missing)) if missing else cpu), missing


def build_shortfall(hw: Hardware) -> str | None:
    """What the installed llama.cpp was built without of this CPU's instruction sets ("dot products", "avx512f,
    avx512_vnni"), where its system info says so: the plan prices the kernels it has and tells how to rebuild."""
    if without_dot_products(hw):
        return "dot products"
    left_out = as_built(hw.cpu, hw)[1] if isinstance(hw.cpu, Cpu) else ()
    return ", ".join(left_out) or None


def shortfall_note(hw: Hardware) -> str | None:
    """What `detect`, the plan and the host's speed sources say of a build that leaves out some of this CPU
    (`build_shortfall`): "built without this CPU's dot products: priced with the kernels it has; rebuild ..."."""
    shortfall = build_shortfall(hw)
    return f"built without this CPU's {shortfall}: priced with the kernels it has; {REBUILD_HINT}" if shortfall else None
