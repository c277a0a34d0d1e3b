"""llama.cpp builds whose AMX kernels GCC < 13 miscompiled load without extra buffer types (backends.llama_amx).

The strings are captured from real builds: the development VM's llama-cpp-python 0.3.36 (pip's native build on an
Intel Xeon with amx_int8, Debian 12: `llama_print_system_info()` and `readelf -p .comment libggml-cpu.so.0`), and
the .comment lines Ubuntu 24.04's GCC 13 and clang 18 write.
"""

from __future__ import annotations

import pytest

from qwenctl.backends import llama_amx

AMX_BUILD_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
                  "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | "
                  "OPENMP = 1 | REPACK = 1 | ")
AVX2_BUILD_INFO = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
DEBIAN_GCC_12 = b"\x00GCC: (Debian 12.2.0-14+deb12u1) 12.2.0\x00"
UBUNTU_GCC_13 = b"\x00GCC: (Ubuntu 13.2.0-23ubuntu4) 13.2.0\x00"
CLANG_18 = b"\x00Ubuntu clang version 18.1.3 (1ubuntu1)\x00"


def test_gcc_12_amx_build_is_refused_with_the_compiler_and_the_fix():
    problem = llama_amx.miscompiled(AMX_BUILD_INFO, b"\x7fELF..." + DEBIAN_GCC_12)
    assert problem is not None
    assert "GCC 12.2" in problem
    assert "CC=gcc-13" in problem  # how to get AMX back


@pytest.mark.parametrize("info, comments", [
    (AMX_BUILD_INFO, UBUNTU_GCC_13),  # GCC 13's header reads all 64 bytes of the configuration
    (AMX_BUILD_INFO, CLANG_18),  # clang's intrinsic is a builtin
    (AVX2_BUILD_INFO, DEBIAN_GCC_12),  # no AMX kernels in the build: nothing to miscompile
])
def test_builds_that_run_their_kernels_are_left_alone(info, comments):
    assert llama_amx.miscompiled(info, comments) is None


def test_the_oldest_gcc_named_decides():
    # a GCC 13 build linked with start files from the system's GCC 12: judged by 12 (a slower prompt, never a crash)
    assert llama_amx.miscompiled(AMX_BUILD_INFO, UBUNTU_GCC_13 + DEBIAN_GCC_12) is not None


def test_loading_a_quantized_model_decodes_a_prompt_batch_on_this_build(tmp_path):
    """The real library: a Q8_0 model's prompt batch goes through whatever kernels this build would use.

    On an AMX machine with a GCC 12 build (the development VM) this batch died with SIGSEGV before the guard;
    the load now says why it kept the weights in the plain buffer.
    """
    pytest.importorskip("llama_cpp")
    from qwenctl.backends import LoadOptions, load_backend
    from qwenctl.testing import models

    path = models.shaped_gguf(tmp_path, "0.5B", "Q8_0")
    session = load_backend("llama.cpp", path, LoadOptions(n_ctx=512, n_gpu_layers=0))
    try:
        session.prefill(list(range(100, 356)))  # a 256-token batch: AMX's tile path, not its one-row VNNI path
        problem = llama_amx.build_problem()
        assert (problem in session.notes) if problem else not any("AMX" in n for n in session.notes)
    finally:
        session.close()
