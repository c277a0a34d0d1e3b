import importlib.util
from pathlib import Path

import pytest
from hardware_captures import document, replay

from qwenctl.hardware import LiveSource, disk
from qwenctl.hardware import engines as backends
from qwenctl.hardware.facts import Absent, Backends, Disk


def _with_env(**env):
    doc = document("linux-x86-no-gpu.json")
    doc["env"] = {"HOME": "/root", **env}
    doc["disk"] = {"/data": {"total": 4_000_000_000_000, "free": 3_000_000_000_000},
                   "/root/.cache": {"total": 270_553_174_016, "free": 78_096_089_088}}
    return replay(doc)


@pytest.mark.parametrize(
    "env, cache, measured_total",
    [
        ({}, "/root/.cache/huggingface/hub", 270_553_174_016),
        ({"HF_HOME": "/data/hf"}, "/data/hf/hub", 4_000_000_000_000),
        ({"HF_HUB_CACHE": "/data/models", "HF_HOME": "/elsewhere"}, "/data/models", 4_000_000_000_000),
        ({"XDG_CACHE_HOME": "/data/cache"}, "/data/cache/huggingface/hub", 4_000_000_000_000),
    ],
    ids=["default", "HF_HOME", "HF_HUB_CACHE-wins", "XDG_CACHE_HOME"],
)
def test_disk_is_measured_where_the_hub_cache_will_live(env, cache, measured_total):
    got = disk.probe(_with_env(**env))
    assert got.path == cache and got.total_bytes == measured_total


def test_disk_live_here(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "not" / "yet"))
    got = disk.probe(LiveSource())
    assert isinstance(got, Disk) and got.path == str(tmp_path / "not" / "yet") and 0 < got.free_bytes <= got.total_bytes


def test_backends_from_a_snapshot():
    doc = document("linux-x86-no-gpu.json")
    doc["python"] = {"packages": {"llama-cpp-python": "0.3.36", "mlx": None, "mlx-lm": None},
                     "llama_supports_gpu_offload": True, "mlx_default_device": None}
    assert backends.probe(replay(doc)) == Backends("0.3.36", True, Absent("not installed"), Absent("not installed"), None)


def test_a_cuda_builds_architectures_from_llama_cpps_system_info():
    """llama_print_system_info names the CUDA architectures a build has code for ("CUDA : ARCHS = 700 | USE_GRAPHS =
    1 | ...", as in public llama.cpp logs of a V100 build): a GPU older than all of them cannot run it."""
    doc = document("linux-x86-no-gpu.json")
    doc["python"] = {"packages": {"llama-cpp-python": "0.3.36", "mlx": None, "mlx-lm": None},
                     "llama_supports_gpu_offload": True, "mlx_default_device": None,
                     "llama_system_info": "CUDA : ARCHS = 750,800,860,890,1200 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | "
                                          "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "}
    assert backends.probe(replay(doc)).llama_cpp_cuda_archs == (750, 800, 860, 890, 1200)
    assert backends.cuda_archs("CUDA : ARCHS = 700 | USE_GRAPHS = 1 | CPU : SSE3 = 1 |") == (700,)
    assert backends.cuda_archs("CPU : SSE3 = 1 | AVX = 1 |") is None and backends.cuda_archs(None) is None


def test_the_cpu_features_a_build_was_compiled_with_from_llama_cpps_system_info():
    """An aarch64 build for a generic armv8-a names NEON and no DOTPROD (its system info as ggml-org/ci logged it,
    llama.cpp/ce/9b965c1b.../ggml-3-arm64-cpu/README.md, build 4316), as llama.cpp's arm64 Docker images of 2025 were:
    on a Hetzner CAX server (Neoverse-N1, whose cpuinfo says asimddp) the plan prices its cores without dot products
    and warns, with the command that gets them back. A build that says DOTPROD, or says nothing of its CPU, is priced as the CPU."""
    from dataclasses import replace

    from qwenctl.hardware import detect
    from qwenctl.hardware.build import without_dot_products
    from qwenctl.hardware.facts import Memory
    from qwenctl.machine import host_device
    from qwenctl.plan import plan
    from qwenctl.render.detect import rows

    doc = document("hetzner-cax-neoverse-n1-vm.json")
    info = "CPU : NEON = 1 | ARM_FMA = 1 | LLAMAFILE = 1 | OPENMP = 1 | AARCH64_REPACK = 1 | "
    doc["python"] = {"packages": {"llama-cpp-python": "0.3.36", "mlx": None, "mlx-lm": None},
                     "llama_supports_gpu_offload": False, "mlx_default_device": None, "llama_system_info": info}
    hw = detect(replay(doc))
    assert hw.backends.llama_cpp_cpu_flags == ("neon",) and without_dot_products(hw)
    host = host_device(hw)
    assert not host.dot_products and host.matrix_ops["int8"] == pytest.approx(2 * host.clock_hz * 16)
    said = [text for label, text, _ in rows(hw) if label == "llama.cpp"]  # `qwenctl detect` says it too
    assert said and said[0].startswith("built without this CPU's dot products")
    ram = Memory(4 * 2**30, 3 * 2**30, 0)  # the server's 4 GB, as the capture's source says (its meminfo was not captured)
    warned = [w for w in plan(replace(hw, memory=ram)).warnings if "built without this CPU's dot products" in w]
    assert warned and "GGML_NATIVE=ON" in warned[0]
    doc["python"]["llama_system_info"] = info + "DOTPROD = 1 | "
    native = detect(replay(doc))
    assert not any("built without" in w for w in plan(replace(native, memory=ram)).warnings)
    assert not [label for label, _, _ in rows(native) if label == "llama.cpp"]
    assert native.backends.llama_cpp_cpu_flags == ("neon", "dotprod") and not without_dot_products(native)
    assert host_device(native).matrix_ops["int8"] == pytest.approx(4 * host.matrix_ops["int8"])
    doc["python"]["llama_system_info"] = "CUDA : ARCHS = 870 | USE_GRAPHS = 1 | "
    assert detect(replay(doc)).backends.llama_cpp_cpu_flags is None


def test_nothing_installed():
    assert backends.probe(replay("linux-x86-no-gpu.json")) == Backends(
        Absent("not installed"), None, Absent("not installed"), Absent("not installed"), None)


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed")
def test_gpu_offload_answer_matches_the_python_binding():
    import llama_cpp

    if llama_cpp.llama_supports_rpc():  # an RPC build answers true everywhere: the probe asks ggml for a GPU of its own
        from qwenctl.backends import rpc

        local_gpu = any(d["type"] in ("GPU", "IGPU") and d["backend"] != "RPC" for _, d in rpc.Ggml.get().devices())
        assert LiveSource().llama_supports_gpu_offload() is local_gpu
    else:
        assert LiveSource().llama_supports_gpu_offload() is bool(llama_cpp.llama_supports_gpu_offload())


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed")
def test_rpc_answer_matches_the_python_binding():
    import llama_cpp

    assert LiveSource().llama_supports_rpc() is bool(llama_cpp.llama_supports_rpc())


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed")
def test_llama_cpp_from_a_source_tree_is_found_with_its_version_and_library(tmp_path, monkeypatch):
    """llama-cpp-python imported from its checkout (PYTHONPATH) has no dist-info, and its libllama, built apart, lies
    where LLAMA_CPP_LIB_PATH says (the GPU machine's setup, benchmarks/gpu/run.sh): detect called it "not installed"
    there while it ran every model. Its version is its __version__ line, its library found where llama_cpp looks."""
    import sys

    real_lib = Path(next(iter(importlib.util.find_spec("llama_cpp").submodule_search_locations))) / "lib"
    tree = tmp_path / "checkout" / "llama_cpp"
    tree.mkdir(parents=True)
    (tree / "__init__.py").write_text('from .llama_cpp import *\nfrom .llama import *\n\n__version__ = "0.3.99"\n')
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "checkout"))
    assert backends.source_tree_version("llama-cpp-python") == "0.3.99"
    assert backends.source_tree_version("mlx") is None
    assert backends._libllama() is None  # the checkout's own lib/ holds no library
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(real_lib))
    assert backends._libllama() is not None
    assert isinstance(LiveSource().llama_supports_gpu_offload(), bool)


def test_rpc_is_read_from_a_snapshot_and_null_in_older_ones():
    doc = document("linux-x86-no-gpu.json")
    doc["python"] = {"packages": {"llama-cpp-python": "0.3.36"}, "llama_supports_gpu_offload": False, "llama_supports_rpc": True}
    assert backends.probe(replay(doc)).llama_cpp_rpc is True
    del doc["python"]["llama_supports_rpc"]
    assert backends.probe(replay(doc)).llama_cpp_rpc is None


@pytest.mark.skipif(importlib.util.find_spec("mlx") is None, reason="mlx not installed")
def test_mlx_default_device_matches_mlx():
    import mlx.core as mx

    expected = "gpu" if mx.default_device() == mx.gpu else "cpu"
    assert LiveSource().mlx_default_device() == expected
