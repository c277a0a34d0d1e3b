"""Real captured machines (tests/fixtures/captures, each citing its public source) through detect -> plan.

Each test states what a sensible plan for that machine is and why, with the figures the model gives.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hardware_captures import board_capture, document, jetpack4_nano, jetpack5_agx_orin, jetpack7_agx_thor, replay, rk3588_board

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.estimate import load_calibration
from qwenctl.hardware import detect
from qwenctl.hardware.nvidia_specs import resident_threads
from qwenctl.machine import apple_device, cuda_build, cuda_device
from qwenctl.plan import Constraints, plan
from qwenctl.result import Absent

GiB = 2**30


def planned(name: str):
    return plan(detect(replay(name)))


def test_pi_4_without_device_tree_plans_a_small_model_on_the_boards_ram_and_bandwidth():
    """Recognised from cpuinfo's Model line; no /proc/meminfo in the capture, so the 8 GiB its revision
    code names stands in (said first), and what the board's memory streams (5.56 GB/s in STREAM, of its 12.8 GB/s
    LPDDR4-3200 peak) sets the speed."""
    r = planned("raspberry-pi-4-no-device-tree.json")
    c = r.chosen
    assert c.device == "cpu" and float(c.size.rstrip("B")) <= 1.5
    assert r.assumptions[0].startswith("memory probe absent") and "8 GiB" in r.assumptions[0]
    assert not any("bandwidth unknown" in a for a in r.assumptions)
    assert 5 <= c.tg_tps <= 30  # the 5 tok/s floor holds at the slow end; a Pi 4 is no faster than that


def test_a100_mig_slice_is_planned_as_the_slice_not_the_card():
    """7 x 1g.10gb: CUDA sees one 10 GB slice with 14 of 98 SMs and 1/8 of the 2 TB/s. The whole card
    would get 72B; the slice holds 14B at 4 bits with a q8_0 cache at 8,192 tokens (9.0 of its 9.5 GiB), at a
    slice's speed. Its CUDA context reserves stacks for its own 14 SMs' threads (28 MiB, where the whole card's
    108 SMs would take 216): a context priced as the H100's, 236 MiB more, left it a 7B."""
    c = planned("nvidia-a100-80gb-mig-7x1g.json").chosen
    vram = c.memory[0]
    assert vram.capacity_bytes < 11 * GiB and "MIG 1g.10gb" in vram.name
    assert c.device == "cuda" and float(c.size.rstrip("B")) <= 14 and c.quant in ("q4_0", "q4_k_m", "q3_k_m")
    assert vram.used_bytes <= vram.budget_bytes < vram.capacity_bytes
    assert resident_threads(detect(replay("nvidia-a100-80gb-mig-7x1g.json")).gpus[0]) == 14 * 2048
    assert 10 <= c.tg_tps <= 60  # 255 GB/s and 14 SMs


def test_a_1_gib_container_gets_the_smallest_model():
    r = planned("linux-x86-cgroup-v1-1gib-nested.json")
    assert r.chosen.size == "0.5B" and r.chosen.memory[0].capacity_bytes == GiB


def test_a_200_mib_container_is_refused_naming_the_smallest_model():
    with pytest.raises(QwenctlError) as e:
        planned("linux-x86-cgroup-v1-200mib.json")
    assert e.value.code == ExitCode.NO_FIT
    assert "even the smallest model, 0.5B Q2_K needs" in str(e.value)


def test_gtx_1050_ti_with_notsupported_memory_keeps_its_gpu_on_the_specifications_4_gib():
    """NVML answers NotSupported for memory on some GeForce boards: that is not a Jetson. The GPU stays,
    its 4 GiB comes from the specification and the plan says so first."""
    r = planned("nvidia-gtx-1050-ti-memory-not-supported.json")
    c = r.chosen
    assert c.device == "cuda" and c.memory[0].capacity_bytes == 4 * GiB
    assert "assumed the specification's 4 GiB" in r.assumptions[0]
    assert c.tg_tps < 60  # 112 GB/s: a 3B at 4 bits reads ~2 GB per token


def test_a_gpu_older_than_every_architecture_of_the_installed_build_is_planned_on_the_cpu_with_the_rebuild():
    """A llama-cpp-python built with CUDA 13 has code for Turing (7.5) and newer only: on the GTX 1050 Ti (6.1) its
    first kernel would abort ("no kernel image is available"). The plan stays on the CPU and says how to rebuild for
    this GPU, with a CUDA 12 toolkit; a build that has 6.1 plans on the GPU, and installing one says the toolkit."""
    import dataclasses

    hw = detect(replay("nvidia-gtx-1050-ti-memory-not-supported.json"))
    hint = next(w for w in plan(hw).warnings if "llama-cpp-python is not installed" in w)
    assert "CUDA 12 toolkit: CUDA 13 builds nothing for the" in hint and "(compute capability 6.1)" in hint
    built = dataclasses.replace(hw.backends, llama_cpp="0.3.36", llama_cpp_gpu_offload=True)
    cuda13 = plan(dataclasses.replace(hw, backends=dataclasses.replace(built, llama_cpp_cuda_archs=(750, 800, 860, 890, 1200))))
    assert cuda13.chosen.device == "cpu"
    (why,) = [w for w in cuda13.warnings if "has no code in the installed llama-cpp-python" in w]
    assert "built for compute capability 7.5 and newer" in why and "-DCMAKE_CUDA_ARCHITECTURES=61" in why
    assert "with a CUDA 12 toolkit" in why and why.endswith("planned on the CPU")
    cuda12 = plan(dataclasses.replace(hw, backends=dataclasses.replace(built, llama_cpp_cuda_archs=(500, 610, 700, 750, 800))))
    assert cuda12.chosen.device == "cuda"


def test_a_cuda_build_whose_runtime_finds_no_gpu_is_told_apart_from_a_cpu_only_build():
    """llama_supports_gpu_offload is false both for a CPU-only build and for a CUDA build whose runtime finds no GPU (a
    driver older than the CUDA it was built with, as in containers): only the first needs CUDA built in. The build's
    own CUDA architectures (llama_print_system_info) tell them apart, and the plan says which."""
    import dataclasses

    hw = detect(replay("nvidia-gtx-1050-ti-memory-not-supported.json"))
    cpu_only = dataclasses.replace(hw.backends, llama_cpp="0.3.36", llama_cpp_gpu_offload=False)
    r = plan(dataclasses.replace(hw, backends=cpu_only))
    assert r.chosen.device == "cpu" and any("built without GPU offload" in w for w in r.warnings)
    r = plan(dataclasses.replace(hw, backends=dataclasses.replace(cpu_only, llama_cpp_cuda_archs=(500, 610, 750))))
    (why,) = [w for w in r.warnings if "CUDA runtime finds no GPU" in w]
    assert r.chosen.device == "cpu" and "update the driver" in why and not any("built without" in w for w in r.warnings)


def test_a_detected_gpu_is_priced_at_its_rated_boost_not_nvmls_maximum_clock():
    """NVML's maximum SM clock is the top of a GeForce card's voltage-frequency table (this GTX 1050 Ti's 1,911 MHz),
    which it holds only lightly loaded; the speed model's constants were fitted at the rated boost (1,392 MHz in
    devices.json), so the detected card is priced there. A GPU no specification names keeps NVML's clock."""
    gpu = detect(replay("nvidia-gtx-1050-ti-memory-not-supported.json")).gpus[0]
    assert gpu.max_sm_clock_mhz == 1911
    assert cuda_device(gpu).clock_hz == 1392e6
    assert cuda_device(replace(gpu, name="NVIDIA Engineering Sample")).clock_hz == 1911e6


def test_m4_max_64gb_gets_its_40_core_bandwidth_and_a_large_model():
    """The 40-core M4 Max has 546 GB/s (the 32-core 410): the GPU core count settles it, so 64 GB plans 72B
    at 4 bits within the 48 GiB wired limit instead of falling back to 100 GB/s and a smaller model."""
    r = planned("apple-m4-max-64gb.json")
    c = r.chosen
    assert c.device == "metal" and c.size == "72B"
    assert not r.assumptions
    assert 5 <= c.tg_tps <= 15


def test_macbook_neo_is_an_m4_generation_gpu_on_its_own_60_gb_s():
    """The MacBook Neo's A18 Pro (an iPhone chip, no "M" in its name) was planned on the assumed 100 GB/s with a guessed
    GPU clock; Apple gives it 60 GB/s, and its GPU is of the M4's Metal family (Apple9, 2024), so it takes apple-m4's
    constants: 7B at 4 bits in the 5.33 GiB macOS lets its GPU wire, at ~10 tok/s. (An Ollama run of Llama 3.2 3B on one,
    published_apple_late.json, measured 19.98 tok/s; the model says 1.02x that, a chip it was never fitted on.)"""
    hw = detect(replay("apple-a18-pro-macbook-neo-8gb.json"))
    gpu = apple_device(hw.apple, "metal")
    assert (gpu.family, gpu.bandwidth_bytes_per_s, gpu.compute_units, gpu.assumed) == ("apple-m4", 60e9, 5, ())
    r = plan(hw)
    c = r.chosen
    assert not r.assumptions
    assert c.device == "metal" and c.size == "7B" and c.quant.startswith("q4")
    assert 8 <= c.tg_tps <= 12


def test_a_big_sur_m1_is_planned_at_the_m1s_bandwidth_not_a_guess():
    """macOS 11 names the M1 "Apple processor"; planned as an unknown chip it got the assumed 100 GB/s and 7B Q4_K_M at
    15.8 tok/s. As the M1 (68.25 GB/s) the same plan says 10.8 (the 8-core M1, held out in speed_model_fit.py, is
    predicted within 5 % of llama.cpp's Apple Silicon table: Llama 2 7B Q4_0 13.5 against 14.2 tok/s); only the GPU
    core count (7 or 8, which Big Sur's sysctl cannot tell) is left assumed."""
    r = planned("apple-m1-8gb-bigsur.json")
    c = r.chosen
    assert [a.split(":")[0] for a in r.assumptions] == ["Apple M1"]
    assert c.device == "metal" and c.size == "7B" and c.quant == "q4_k_m"
    assert 9 <= c.tg_tps <= 13


def test_a_macos_virtual_machine_is_planned_on_its_cpu_and_says_why():
    """A GitHub Actions M1 runner (3 vCPUs, 7 GB): on the CPU with its three threads, the paravirtual GPU named as
    unused, and no rated bandwidth for a VM's share of the host's memory (the snapshot's fallback, said first)."""
    r = planned("apple-m1-virtual-github-runner.json")
    c = r.chosen
    assert (c.backend, c.device, c.n_gpu_layers, c.n_threads) == ("llama.cpp", "cpu", 0, 3)
    assert any("macOS virtual machine" in n and "not used" in n for n in r.warnings)
    assert r.assumptions[0].startswith("host memory bandwidth unknown")


def test_an_apple_ultra_newer_than_the_table_plans_a_large_model_at_two_max_dies_bandwidth():
    """The M4 Max 64 GB capture renamed "Apple M5 Ultra" with 80 GPU cores: on the 100 GB/s fallback it was planned a 14B
    at 10 tok/s; as two M5 Max dies (1,228 GB/s, said as the plan's assumption) the 64 GB hold a 72B at 4 bits, at
    ~16 tok/s (an Ultra as the model prices it, held out: the M1 Ultra 48-core's Qwen2.5-14B Q4_K_M 37.2 tok/s
    predicted against 35.9 measured)."""
    doc = document("apple-m4-max-64gb.json")
    for key in doc["commands"]:
        doc["commands"][key] = (doc["commands"][key].replace("Apple M4 Max", "Apple M5 Ultra")
                                .replace('"gpu-core-count" = 40', '"gpu-core-count" = 80'))
    r = plan(detect(replay(doc)))
    c = r.chosen
    assert [a.split(";")[0] for a in r.assumptions] == ["Apple M5 Ultra: not in this release's table"]
    assert c.device == "metal" and c.size == "72B" and 10 <= c.tg_tps <= 20


def test_two_socket_epyc_without_meminfo_is_refused_in_one_line():
    """8 cores from `cpu cores` x 2 sockets, but no RAM figure: a CPU plan cannot be checked, so no plan."""
    hw = detect(replay("linux-x86-epyc-2-sockets-lxc.json"))
    assert hw.cpu.physical_cores == 8
    with pytest.raises(QwenctlError) as e:
        plan(hw)
    assert "memory size" in str(e.value) and "\n" not in str(e.value)


def test_a_jetpack_5_orin_without_nvml_is_planned_on_its_gpu():
    """No NVML before JetPack 6, but CUDA and a CUDA build of llama.cpp run: the AGX Orin 64GB's GPU (from its board)
    with the host's 61 GiB and 204.8 GB/s holds a 32B at 4 or 5 bits (Q5_0's kernel reads a byte faster than Q4_K's
    where the SMs bind, so the two decode alike), at a bandwidth-bound few tok/s."""
    import dataclasses

    hw = detect(replay(jetpack5_agx_orin()))
    hw = dataclasses.replace(hw, backends=dataclasses.replace(hw.backends, llama_cpp="0.3.36", llama_cpp_gpu_offload=True))
    c = plan(hw).chosen
    assert c.device == "cuda" and c.n_gpu_layers == -1
    assert c.size == "32B" and c.quant in ("q4_k_m", "q5_0")
    assert 4 <= c.tg_tps <= 10  # ~19-21 GB of weights a token at 204.8 GB/s


def test_a_jetson_nano_is_planned_on_its_cpu_because_its_last_cuda_cannot_build_llama_cpp():
    """The Nano's board names its GPU (a Tegra X1, compute capability 5.3, which llama.cpp's kernels would cover), but
    NVIDIA's last JetPack for it ships CUDA 10.2 and llama.cpp's CUDA backend is C++17, which nvcc compiles from CUDA 11
    on: a GPU plan could not be built, even with a CUDA build of llama-cpp-python installed. The CPU plan says why and
    runs on the board's 25.6 GB/s of LPDDR4, not the 25.6 GB/s fallback by coincidence: the figure's source says so."""
    import dataclasses

    hw = detect(replay(jetpack4_nano()))
    # without llama-cpp-python, the install hint does not send the user to a CUDA build that cannot compile there
    assert not any("GGML_CUDA" in w for w in plan(hw).warnings)
    (gpu,) = hw.gpus
    assert (gpu.name, gpu.compute_capability) == ("NVIDIA Tegra X1", (5, 3))
    assert cuda_device(gpu).family == "nvidia-maxwell"  # 5.3 as llama.cpp runs it: 5.2's kernels, no dp4a, no fp16
    assert hw.memory.bandwidth_bytes_per_s == 25_600_000_000 and "board_bandwidth.json" in hw.memory.bandwidth_source
    hw = dataclasses.replace(hw, backends=dataclasses.replace(hw.backends, llama_cpp="0.3.36", llama_cpp_gpu_offload=True))
    r = plan(hw)
    c = r.chosen
    assert c.device == "cpu" and c.n_gpu_layers == 0
    assert any("NVIDIA Tegra X1 has CUDA 10.2 at most" in w and "needs CUDA 11.0" in w for w in r.warnings)
    assert float(c.size.rstrip("B")) <= 3


def test_a_pi_3b_plus_plans_the_smallest_model_at_its_in_order_cores_rate():
    """A real Pi 3B+ (Revision a020d3: 1 GB, four Cortex-A53 without dot product): its 32-bit LPDDR2 at the firmware's
    default 500 MHz streams at most 4.0 GB/s (board_bandwidth.json), a sixth of the 25.6 GB/s fallback it was planned at
    before. Its in-order cores' kernels bind before that memory does: 0.17 weights a cycle a core (devices.json
    arm-cortex-a53, from a published RK3566 row) x 4 cores x 1.4 GHz is about 1e9 weights a second, so the 0.5B that
    fits the 768 MiB left after headroom decodes at about 2 tok/s; by its memory alone it had been priced at 6.2. One
    board's rate: the slow end is half the prediction."""
    r = planned("raspberry-pi-3b-plus.json")
    c = r.chosen
    assert c.device == "cpu" and c.size == "0.5B" and c.n_threads == 4
    (host,) = c.speed.terms
    assert host.bandwidth_bytes_per_s == 4_000_000_000 and host.device.startswith("Raspberry Pi 3 Model B+")
    assert host.threads_s > host.stream_s + host.dequant_s  # the kernels bind, not the memory
    assert not any("bandwidth" in a for a in r.assumptions)
    assert 1.5 <= c.tg_tps <= 2.5
    assert c.speed.tg_tps_low == pytest.approx(c.tg_tps / 2, rel=0.01)


def test_a_pi_2_is_named_by_its_cortex_a7_and_planned_at_its_lpddr2():
    """A Pi 2 (32-bit Cortex-A7, CPU part 0xc07; device-tree model 'Raspberry Pi 2 Model B Rev 1.1') had no board row,
    no bandwidth and no core name: planned on the 25.6 GB/s fallback as an Armv8 Cortex-A72. Now its LPDDR2 at the
    firmware's 450 MHz (3.6 GB/s) and its 900 MHz A7s, priced at the in-order A53 row's rate (an upper bound for the
    A7): a 0.5B at about 1 tok/s, and the plan says nothing reaches the speed floor."""
    hw = detect(replay("raspberry-pi-2-1gb.json"))
    assert hw.cpu.brand == "ARM Cortex-A7" and hw.board.model == "Raspberry Pi 2 Model B Rev 1.1"
    r = plan(hw)
    c = r.chosen
    assert c.size == "0.5B" and c.n_threads == 4
    (host,) = c.speed.terms
    assert host.bandwidth_bytes_per_s == 3_600_000_000 and host.device.startswith("Raspberry Pi 2 Model B (4x Cortex-A7)")
    assert 0.8 <= c.tg_tps <= 1.6
    assert any("nothing here reliably reaches" in w for w in r.warnings)


def test_an_rk3588_board_plans_on_its_four_big_cores_and_its_lpddr4x():
    """The ROCK 5B's device tree names the board, whose LPDDR4X runs 4,224 MT/s on the SoC's 64-bit bus (33.8 GB/s,
    board_bandwidth.json), not the 25.6 GB/s fallback; llama.cpp is given the four Cortex-A76, not all eight cores
    (with the four A55 too it decodes at half the speed: ggml-org/llama.cpp#7176, an Orange Pi 5). A 3B at 4 bits
    streams about 2 GB a token: several tok/s, not tens."""
    r = plan(detect(replay(rk3588_board("Radxa ROCK 5B", "radxa,rock-5b rockchip,rk3588"))))
    c = r.chosen
    assert c.device == "cpu" and c.n_threads == 4
    (host,) = c.speed.terms
    assert host.bandwidth_bytes_per_s == 33_792_000_000
    assert not any("bandwidth" in a for a in r.assumptions)
    assert 4 <= c.tg_tps <= 12


def test_an_unlisted_rk3588_board_is_planned_on_its_socs_usual_memory_and_says_so():
    """A board with no row of its own: the plan assumes what most RK3588 boards fit (LPDDR4X-4224) rather than the
    generic one-DDR4-channel fallback, and its first line says it assumed it, with the command that measures it."""
    r = plan(detect(replay(rk3588_board("FriendlyElec NanoPC-T6", "friendlyelec,nanopc-t6 rockchip,rk3588"))))
    (host,) = r.chosen.speed.terms
    assert host.bandwidth_bytes_per_s == 33_792_000_000
    (assumed,) = [a for a in r.assumptions if "bandwidth" in a]
    assert "assumed 33.8 GB/s (RK3588 board: LPDDR4X-4224" in assumed and "detect --measure" in assumed


def test_a_hifive_premier_p550_decodes_a_3b_at_its_scalar_cores_rate():
    """Four SiFive P550 at 1.4 GHz without the vector extension run llama.cpp's plain C kernels: compute, not memory,
    sets the pace (riscv-scalar: 0.14 weights a cycle a core, the rate Ollama's published llama3.2:3b and llama3.1:8b
    rows on this board give, 0.24 and 0.10 tok/s). Before it had a row it was priced as an x86 core with SSE, 13x
    too fast; a 3B at 4 bits is now a fraction of a token a second, and the plan says nothing reaches 5 tok/s."""
    hw = detect(replay(board_capture("eswin-eic7700x-cpuinfo.json", max_mhz=1400)))
    r = plan(hw, Constraints(size="3B"))
    c = r.chosen
    (host,) = c.speed.terms
    assert c.device == "cpu" and c.n_threads == 4 and host.threads_s > host.stream_s + host.dequant_s
    assert 0.15 <= c.tg_tps <= 0.35  # Qwen2.5-3B's 3.09 B weights / (4 x 0.14 x 1.4 GHz): 0.25 tok/s


def test_a_visionfive_2_gets_the_best_small_model_not_the_smallest_quant():
    """A StarFive JH7110 (four U74, scalar): every 0.5B quant decodes at one compute-bound speed, under 5 tok/s, so the
    planner takes the best of the fastest plans (a 4-bit or better 0.5B), not Q2_K, and says nothing reaches 5 tok/s."""
    r = plan(detect(replay(board_capture("starfive-jh7110-cpuinfo.json", max_mhz=1500))))
    c = r.chosen
    assert (c.size, c.device) == ("0.5B", "cpu") and c.quant not in ("q2_k", "q3_k_m")
    assert c.tg_tps < 5 and any("nothing here reliably reaches 5 tok/s" in w for w in r.warnings)


def test_a_spacemit_k1_runs_the_rvv_kernels():
    """Eight SpacemiT X60 with RVV 1.0 (a Banana Pi F3's K1) at 1.6 GHz: riscv-rvv's 0.71 weights a cycle a core, the
    rate llama-bench's TinyLlama Q4_K_M (8.29 tok/s on 8 threads) gives, five times the scalar one."""
    hw = detect(replay(board_capture("spacemit-k1-cpuinfo.json", max_mhz=1600)))
    scalar = detect(replay(board_capture("eswin-eic7700x-cpuinfo.json", max_mhz=1600)))
    fast, slow = (plan(h, Constraints(size="0.5B", quant="q4_k_m")).chosen for h in (hw, scalar))
    assert fast.n_threads == 8 and slow.n_threads == 4
    assert fast.tg_tps / slow.tg_tps > 5  # twice the cores, five times the rate a core
    # each rate is one board's, and held-out boards run at 0.22-2.02 of it: the slow end is half the prediction
    assert fast.tg_tps_low == pytest.approx(fast.tg_tps * 0.5) and slow.tg_tps_low == pytest.approx(slow.tg_tps * 0.5)


def test_a_32_bit_raspberry_pi_os_plans_what_one_process_can_map():
    """A Pi 4 8GB under Raspberry Pi OS's 32-bit userland (on its 64-bit kernel: `pointer_bits` 32): llama.cpp maps
    the model into its own 4 GiB, so a 7B at Q4_K_M (4.4 GiB) cannot load whatever the RAM says; the budget is the
    address space less the program's own 512 MiB, and asked for a 7B the plan takes the quant that fits there."""
    from qwenctl.machine import host_budget

    doc = document("raspberry-pi-4-8gb.json")
    doc["files"]["/proc/meminfo"] = document("raspberry-pi-5-8gb.json")["files"]["/proc/meminfo"]
    doc["platform"]["pointer_bits"] = 32
    hw = detect(replay(doc))
    budget, _, rule = host_budget(hw)
    assert budget == 3.5 * 2**30 and "32-bit process" in rule
    c = plan(hw, Constraints(size="7B")).chosen
    assert c.memory[0].used_bytes <= budget and c.quant in ("q2_k", "q3_k_m")


def test_a_jetpack_7_thor_is_planned_on_its_blackwell_gpu_and_the_boards_273_gb_s():
    """NVML names both Thor modules "NVIDIA Thor" and has no memory of their own to report: the devkit's board names the
    T5000 (20 SMs at 1,575 MHz, compute capability 11.0), the host's RAM is the GPU's, and the board's 273 GB/s of
    LPDDR5X sets the speed. A 32B at 4 bits (19.9 GB a token) fits; its 20 SMs keep less in flight than the DGX Spark's
    48 on the same 273 GB/s, so it decodes slower than a Spark (11.9 tok/s, docs/planning.md), at under 12 tok/s."""
    import dataclasses

    hw = detect(replay(jetpack7_agx_thor()))
    (gpu,) = hw.gpus
    assert gpu.unified_memory and gpu.compute_capability == (11, 0)
    hw = dataclasses.replace(hw, backends=dataclasses.replace(hw.backends, llama_cpp="0.3.36", llama_cpp_gpu_offload=True))
    r = plan(hw)
    c = r.chosen
    assert c.device == "cuda" and c.n_gpu_layers == -1 and (c.size, c.quant) == ("32B", "q4_k_m")
    assert 6 <= c.tg_tps <= 12
    assert not any("bandwidth unknown" in a for a in r.assumptions)


def test_a_spacemit_k3_runs_on_its_eight_x100_cores_at_their_own_rate():
    """A K3 lists 16 harts, but ordinary processes may run only on its eight out-of-order X100 cores (affinity 0-7;
    the A100 AI cores take only what is started on them): eight threads, not sixteen, at riscv-rvv-x100's 3.4
    weights a cycle a core (one X100 thread's published TinyLlama Q4_0 rate), 4.8x the in-order X60's. The K3's
    published Qwen2.5-0.5B Q4_0 decode on 8 threads is 34.6 tok/s (bruno.verachten.fr Part 4); its memory is not
    published, so the plan assumes the fallback bandwidth and says so."""
    hw = detect(replay(board_capture("spacemit-k3-cpuinfo.json", max_mhz=2400)))
    assert (hw.cpu.physical_cores, hw.cpu.usable_cpus, hw.cpu.brand) == (16, 8.0, "Spacemit(R) X100")
    from qwenctl.machine import host_device

    assert host_device(hw).core == "riscv-rvv-x100"
    r = plan(hw, Constraints(size="0.5B", quant="q4_0"))
    c = r.chosen
    assert c.n_threads == 8 and 25 <= c.tg_tps <= 45  # 38.4: the assumed memory binds, 1.11x the published 34.6
    assert any("assumed 25.6 GB/s" in a for a in r.assumptions)
    k1 = plan(detect(replay(board_capture("spacemit-k1-cpuinfo.json", max_mhz=1600))), Constraints(size="0.5B", quant="q4_0"))
    assert k1.chosen.n_threads == 8 and c.tg_tps > k1.chosen.tg_tps


def test_a_pi_4_sold_at_1_25_ghz_is_priced_at_its_cpufreq_maximum_not_the_boards_clock():
    """The Raspberry Pi 4 "1.25 GHz edition" (2026) names itself like any Pi 4: sbc-bench's report on one
    (ThomasKaiser/sbc-bench#136, 2026-07-03) reads "RPi 4 Model B Rev 1.4" with every core's cpufreq maximum at
    1,300 MHz. The Pi 4 8GB capture with that maximum added (the capture has no cpufreq of its own): the plan prices
    the A72s at 1.3 GHz, below the board row's 1.5, so its prompt is slower and its decode no faster; with cpufreq
    reporting the board's own clock, or an overclock above it, nothing changes."""
    from qwenctl.machine import host_device

    def pi4(max_mhz: int | None):
        return detect(replay(board_capture("raspberry-pi-4-8gb.json", max_mhz)))

    slow, plain, overclocked = pi4(1300), pi4(None), pi4(2000)
    assert slow.cpu.max_clock_mhz == 1300
    assert host_device(slow).clock_hz == 1.3e9
    assert host_device(plain).clock_hz == host_device(overclocked).clock_hz == 1.5e9
    q = Constraints(size="0.5B", quant="q4_k_m")
    a, b = plan(slow, q).chosen, plan(plain, q).chosen
    assert a.pp_tps < 0.9 * b.pp_tps
    assert a.tg_tps <= b.tg_tps


def _held_by_another_program(capture: str, free_mib: int) -> dict:
    """The capture with all but ``free_mib`` of its first GPU's memory in use, as NVML reports it while Ollama keeps
    a model loaded (or a game runs)."""
    doc = document(capture)
    info = doc["nvml"]["devices"][0]["nvmlDeviceGetMemoryInfo"]
    info["free"] = free_mib * 2**20
    info["used"] = info["total"] - info["free"]
    return doc


def test_a_gpu_whose_memory_another_program_holds_gets_a_plan_on_the_cpu():
    """An RTX 4060 with 300 MiB of its 8 GiB free holds no model, not even 0.5B with no layers there (a CUDA build's
    context and buffers): the machine still has 23 GiB of RAM, so the plan runs on the CPU, without the GPU, and says
    why and how to get the GPU back. Before, the plan was "nothing fits this machine"."""
    r = plan(detect(replay(_held_by_another_program("nvidia-rtx-4060.json", 300))))
    c = r.chosen
    assert (c.backend, c.device, c.n_gpu_layers) == ("llama.cpp", "cpu", 0)
    assert [p.name for p in c.memory] == ["RAM"] and float(c.size.rstrip("B")) >= 3
    assert any(w.startswith("no model fits the GPU's free memory (the NVIDIA GeForce RTX 4060 has 0.3 GiB free of 8.0 GiB")
               and "planned on the CPU, without the GPU" in w for w in r.warnings)
    assert "no model fits the GPU's free memory" in c.reasons[0]
    # its RAM includes what the CUDA build starts on the host with no GPU in the load: the same plan without a GPU
    # (no CUDA build here) holds that much less
    runtime = load_calibration()["memory"]["cuda_runtime_host_bytes"]
    alike = plan(replace(detect(replay(_held_by_another_program("nvidia-rtx-4060.json", 300))), nvidia=Absent("no NVIDIA GPU")),
                 Constraints(size=c.size, quant=c.quant)).chosen
    assert alike.device == "cpu" and c.memory[0].overhead_bytes - alike.memory[0].overhead_bytes == runtime


def test_gpus_hidden_from_cuda_still_cost_the_cuda_runtime():
    """CUDA_VISIBLE_DEVICES="" hides the RTX 4060, so the plan runs on the CPU; the CUDA build still starts its runtime on
    the host (the H100 machine the same way: 743 MiB measured, 548 predicted without it, benchmarks/results/
    h100-cpu-alone-s72), which a machine without NVIDIA's driver does not."""
    doc = document("nvidia-rtx-4060.json")
    doc["env"]["CUDA_VISIBLE_DEVICES"] = ""
    hidden = detect(replay(doc))
    assert hidden.gpus == ()
    c = plan(hidden, Constraints(size="1.5B", quant="q4_k_m")).chosen
    alike = plan(replace(hidden, nvidia=Absent("no NVIDIA driver")), Constraints(size="1.5B", quant="q4_k_m")).chosen
    runtime = load_calibration()["memory"]["cuda_runtime_host_bytes"]
    assert c.device == alike.device == "cpu" and c.memory[0].overhead_bytes - alike.memory[0].overhead_bytes == runtime
    # with every GPU hidden, llama_supports_gpu_offload() answers False (so on the H100 machine), but the build still
    # names the CUDA archs it carries: a CUDA build all the same. A CPU build names none and starts no runtime
    def with_build(offload: bool, archs: tuple[int, ...]):
        return replace(hidden, backends=replace(hidden.backends, llama_cpp_gpu_offload=offload, llama_cpp_cuda_archs=archs))

    assert cuda_build(with_build(False, (900,))) and not cuda_build(with_build(False, ()))


def test_a_gpu_with_room_for_part_of_a_model_keeps_it():
    """With 2 GiB free the GPU holds some layers of a 7B: the plan stays on CUDA, as before."""
    c = plan(detect(replay(_held_by_another_program("nvidia-rtx-4060.json", 2048)))).chosen
    assert c.device == "cuda" and 0 < c.n_gpu_layers < 29
