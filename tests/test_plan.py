import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from planning_machines import backends, mac, pc

from qwenctl.cli import cli
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware import nvidia_specs
from qwenctl.plan import SPEED_TIE, Constraints, plan
from qwenctl.profiles import list_profiles, load_profile

PROFILES = [p.name for p in list_profiles()]


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_plans_something_that_fits(name):
    result = plan(load_profile(name))
    chosen = result.chosen
    for pool in chosen.memory:
        assert pool.used_bytes <= pool.budget_bytes <= pool.capacity_bytes
    assert chosen.files or chosen.backend == "mlx"
    assert chosen.download_bytes > 0 and chosen.tg_tps > 0 and chosen.reasons


def test_a_speed_tie_goes_to_the_smaller_download():
    """Q5_0 and Q4_K_M score alike, and on a CPU with bandwidth to spare their predicted speeds meet (its threads,
    not the memory, set the pace, and both files hold the same weights): within 5 % the model cannot tell them
    apart (on the CI machine which led ahead turned on a bandwidth measured under load), so the smaller file is
    chosen and the reason says so."""
    import dataclasses

    hw = load_profile("laptop-16gb-cpu-only")
    # an Intel core of the same ISA: its threads' kernels set the pace (a Zen core, as the profile's Ryzen 5 7530U, is
    # held to the bytes each thread reads, so there Q4_K_M, the smaller file, is simply faster)
    hw = dataclasses.replace(hw, cpu=dataclasses.replace(hw.cpu, brand="11th Gen Intel(R) Core(TM) i5-1135G7"))
    fast = dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, bandwidth_bytes_per_s=200_000_000_000))
    result = plan(fast, Constraints(size="7B"))
    q5_0 = next(a for a in result.alternatives if a.plan.quant == "q5_0")
    assert result.chosen.quant == "q4_k_m" and q5_0.plan.tg_tps >= result.chosen.tg_tps
    assert q5_0.plan.tg_tps <= 1.05 * result.chosen.tg_tps
    assert q5_0.plan.download_bytes > result.chosen.download_bytes
    assert "as fast within 5 %" in q5_0.reason and "larger download" in q5_0.reason
    assert "7B Q5_0, which is as fast within 5 %" in result.chosen.reasons[-1]
    # at the profile's own 51.2 GB/s Q4_K_M is both faster and smaller
    slow = plan(hw, Constraints(size="7B"))
    q5_0 = next(a for a in slow.alternatives if a.plan.quant == "q5_0")
    assert slow.chosen.quant == "q4_k_m" and q5_0.plan.tg_tps < slow.chosen.tg_tps
    q8_0 = next(a for a in slow.alternatives if a.plan.quant == "q8_0")  # 8.1 GB a token where Q4_K_M reads 4.7
    assert q8_0.plan.tg_tps < 0.95 * slow.chosen.tg_tps and q8_0.reason.startswith("same quality, slower (")


def test_downloads_that_round_alike_show_apart():
    """The 0.5B's Q4_K_M and Q5_0 (491.4 and 490.5 MB), which a Pi 4 once tied on speed: in tenths of a GiB both
    read "0.5 GiB", which said "a larger download (0.5 GiB vs 0.5 GiB)"."""
    from qwenctl.plan import _sizes

    result = plan(load_profile("raspberry-pi-4-4gb"))
    q4km = next(a.plan for a in result.alternatives if a.plan.size == "0.5B" and a.plan.quant == "q4_k_m")
    assert result.chosen.quant == "q5_0"
    assert _sizes(q4km.download_bytes, result.chosen.download_bytes) == "469 vs 468 MiB"


def test_seed_rtx_4060_runs_7b_4bit_on_cuda():
    c = plan(load_profile("rtx-4060-8gb")).chosen
    assert (c.size, c.quant, c.backend, c.device, c.n_gpu_layers) == ("7B", "q4_k_m", "llama.cpp", "cuda", -1)
    assert c.files == ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "qwen2.5-7b-instruct-q4_k_m-00002-of-00002.gguf")
    # the issue's seed says 10-40 tok/s; a published RTX 4060 *Laptop* run of this exact model measured 48.7
    # (AlexsJones/llmfit PR #958), so the prediction (~44 on the faster desktop card) sits just above that band
    assert 10 <= c.tg_tps <= 60


def test_a_plan_says_how_fast_it_generates_with_its_context_full():
    """Each generated token reads every cached token's K and V rows: at the 4060's 8,192-token context the 7B's
    f16 cache (28 layers x 4 KV heads x 128 x 2 x 2 B = 57,344 B a token) adds 7,936 tokens' rows to the 256 that
    tg_tps is priced at, streamed at the rate the weights are."""
    c = plan(load_profile("rtx-4060-8gb")).chosen
    assert c.speed is not None and c.n_ctx == 8192
    t = c.speed.terms[0]
    rate = t.bytes_read / t.stream_s
    assert 1 / c.tg_tps_full - 1 / c.tg_tps == pytest.approx((8192 - 256) * 57344 / rate, rel=1e-6)
    assert 0.85 * c.tg_tps < c.tg_tps_full < c.tg_tps  # 470 MB more a token, beside 4.7 GB of weights


def test_seed_m2_16gb_runs_7b_or_larger_on_mlx():
    c = plan(load_profile("macbook-air-m2-16gb")).chosen
    assert c.backend == "mlx" and c.device == "metal"
    assert float(c.size.rstrip("B")) >= 7
    assert c.files == () and c.repo.startswith("mlx-community/")


def test_seed_cpu_only_16gb_runs_7b_q4_k_m_at_a_few_tok_s():
    c = plan(load_profile("laptop-16gb-cpu-only")).chosen
    assert (c.size, c.quant, c.device, c.n_gpu_layers, c.n_threads) == ("7B", "q4_k_m", "cpu", 0, 6)
    assert 2 <= c.tg_tps <= 15
    # a higher floor makes it go smaller
    faster = plan(load_profile("laptop-16gb-cpu-only"), Constraints(min_tg_tps=12)).chosen
    assert float(faster.size.rstrip("B")) < 7


def test_a_steam_deck_runs_7b_q4_k_m_on_its_four_zen_2_cores():
    """102.4 GB/s of LPDDR5 is more than four Zen 2 cores multiply through: the threads bind (about 140 ms a token
    against 66 ms of reads), so the plan takes one thread a core and a 7B at a handheld's pace."""
    c = plan(load_profile("steam-deck-oled-16gb")).chosen
    assert (c.size, c.quant, c.device, c.n_gpu_layers, c.n_threads) == ("7B", "q4_k_m", "cpu", 0, 4)
    assert 5 <= c.tg_tps <= 10


def test_a_framework_desktop_runs_14b_on_its_cpu_at_what_its_fabric_links_carry():
    """Strix Halo's 256 GB/s LPDDR5X is behind its two CCDs' fabric links (2 x 32 bytes x 1,733 MHz = 111 GB/s,
    devices.json x86_designs die_links); qwenctl drives no Radeon backend, so the plan is the CPU's. Ollama decodes
    Qwen2.5-14B Q4_K_M on this machine's CPU at 11.4 tok/s (the held-out row of benchmarks/published_speeds.json);
    priced on its DRAM alone it was 17.5."""
    c = plan(load_profile("framework-desktop-128gb")).chosen
    assert (c.size, c.quant, c.device, c.n_threads) == ("14B", "q4_k_m", "cpu", 16)
    assert 0.8 * 11.4 <= c.tg_tps <= 1.2 * 11.4
    r = CliRunner().invoke(cli, ["plan", "--profile", "framework-desktop-128gb", "--explain-speed"])
    assert r.exit_code == 0, r.output
    streaming = next(line for line in r.output.splitlines() if line.strip().startswith("streaming"))
    assert "the core complexes' fabric links" in streaming and float(streaming.split(" at ")[1].split()[0]) <= 111


def test_seed_4gb_board_gets_small_or_3bit_model():
    c = plan(load_profile("raspberry-pi-4-4gb")).chosen
    assert c.device == "cpu" and c.memory[0].used_bytes < 4 * 10**9
    assert float(c.size.rstrip("B")) <= 1.5 or c.quant in ("q2_k", "q3_k_m")


def test_seed_h100_runs_72b_4bit_or_32b_8bit_fully_on_gpu():
    c = plan(load_profile("h100-80gb")).chosen
    assert c.device == "cuda" and c.n_gpu_layers == -1
    assert (c.size == "72B" and c.quant in ("q4_k_m", "q5_0", "q5_k_m", "q6_k", "q8_0")) or (c.size == "32B" and c.quant in ("q8_0", "fp16"))


def test_dgx_spark_runs_32b_on_its_unified_memory_at_the_gpus_share_of_273_gb_s():
    c = plan(load_profile("dgx-spark-128gb")).chosen
    assert (c.size, c.quant, c.device, c.n_gpu_layers) == ("32B", "q4_k_m", "cuda", -1)
    # 19.9 GB read per token at 0.87 of 273 GB/s is ~12 tok/s; llama.cpp's scoreboard had GB10 streaming a 7B Q4_0 at
    # 0.80 of peak (57 tok/s)
    assert 9 <= c.tg_tps <= 14


def test_rejected_alternatives_say_why():
    result = plan(load_profile("rtx-4060-8gb"))
    reasons = {a.plan.name: a for a in result.alternatives}
    big = reasons["72B Q4_K_M"]
    assert big.rejected == "memory" and "needs" in big.reason and "GiB of RAM" in big.reason
    split = reasons["14B Q4_K_M"]
    assert split.rejected == "speed" and "5 tok/s" in split.reason
    assert reasons["7B Q6_K"].rejected is None and "same quality" in reasons["7B Q6_K"].reason


def test_constraints_narrow_the_choice():
    hw = load_profile("rtx-4090-24gb")
    c = plan(hw, Constraints(size="7B", quant="Q8_0", n_ctx=32768)).chosen
    assert (c.size, c.quant, c.n_ctx, c.n_gpu_layers) == ("7B", "q8_0", 32768, -1)


def test_context_longer_than_the_model_is_refused_with_nearest():
    with pytest.raises(QwenctlError) as e:
        plan(load_profile("rtx-4090-24gb"), Constraints(size="7B", n_ctx=65536))
    assert e.value.code == ExitCode.NO_FIT and "32768" in e.value.message and "nearest plan" in e.value.hint


def test_impossible_request_is_no_fit_with_nearest_plan():
    with pytest.raises(QwenctlError) as e:
        plan(load_profile("raspberry-pi-5-8gb"), Constraints(size="72B"))
    assert e.value.code == ExitCode.NO_FIT
    assert "72B" in e.value.message and "needs" in e.value.message
    assert e.value.hint.startswith("nearest plan that works: ")


def test_explicit_speed_floor_is_strict_default_one_relaxes():
    pi = load_profile("raspberry-pi-4-4gb")
    with pytest.raises(QwenctlError) as e:
        plan(pi, Constraints(min_tg_tps=500))
    assert e.value.code == ExitCode.NO_FIT
    slow = pc(4, host_bw=2e9)  # nothing reaches 5 tok/s: the default floor relaxes to the fastest that fit
    r = plan(slow)
    assert any("the best of the fastest plans that fit" in w for w in r.warnings)
    assert r.chosen.reasons[1].startswith("nothing reaches 5 tok/s: the highest quality of the fastest plans")
    fastest = max(a.plan.tg_tps for a in r.alternatives)
    assert r.chosen.tg_tps >= fastest * (1 - SPEED_TIE)


def test_mlx_only_on_apple_and_llama_cpp_metal_without_mlx():
    with pytest.raises(QwenctlError) as e:
        plan(pc(32, 12), Constraints(backend="mlx"))
    assert e.value.code == ExitCode.NO_FIT
    c = plan(mac(16, mlx=False)).chosen
    assert (c.backend, c.device, c.n_gpu_layers) == ("llama.cpp", "metal", -1)
    assert c.files


def test_no_backend_installed_still_plans_and_says_what_to_install():
    r = plan(pc(32, 12, be=backends(llama=False)))
    assert r.chosen.device == "cuda"
    assert any("pip install 'qwenctl[llama]'" in w and "GGML_CUDA" in w for w in r.warnings)


def test_llama_cpp_without_gpu_offload_plans_cpu():
    r = plan(pc(32, 12, be=backends(offload=False)))
    assert r.chosen.device == "cpu" and r.chosen.n_gpu_layers == 0
    assert any("without GPU offload" in w for w in r.warnings)


def test_a_gpu_older_than_llama_cpps_cuda_builds_is_planned_on_the_cpu_and_said_why():
    """CUDA 12 builds of llama.cpp start at compute capability 5.0 (Maxwell): a Kepler Tesla K80 (3.7) gets a CPU plan
    with the reason, not a GPU plan that cannot load; a Maxwell card keeps its GPU."""
    from dataclasses import replace

    old = pc(32, 12)
    old = replace(old, nvidia=replace(old.nvidia, gpus=(replace(old.gpus[0], name="Tesla K80", compute_capability=(3, 7)),)))
    r = plan(old)
    assert r.chosen.device == "cpu" and r.chosen.n_gpu_layers == 0
    assert any("Tesla K80 (compute capability 3.7) is older than" in w for w in r.warnings)
    maxwell = replace(old, nvidia=replace(old.nvidia, gpus=(replace(old.gpus[0], name="Tesla M40 24GB", compute_capability=(5, 2)),)))
    assert plan(maxwell).chosen.device == "cuda"


def test_load_options_carry_the_plan():
    from qwenctl.pipeline import load_options

    c = plan(load_profile("rtx-4060-8gb")).chosen
    o = load_options(c)
    assert (o.n_ctx, o.n_gpu_layers, o.n_threads, o.flash_attn, o.kv_cache_type) == (c.n_ctx, -1, 6, True, "f16")


ram = st.sampled_from([2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192])
vram = st.sampled_from([None, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 80])


@settings(max_examples=40, deadline=None)
@given(ram=ram, vram=vram, more_ram=st.sampled_from([0, 4, 16, 64]), more_vram=st.sampled_from([0, 2, 8, 24]))
def test_more_memory_never_lowers_quality(ram, vram, more_ram, more_vram):
    floor = Constraints(min_tg_tps=3)
    try:
        small = plan(pc(ram, vram), floor).chosen
    except QwenctlError:
        return  # nothing fit the smaller machine
    bigger_vram = None if vram is None else vram + more_vram
    big = plan(pc(ram + more_ram, bigger_vram), floor).chosen
    assert big.quality >= small.quality - 1e-9


@settings(max_examples=40, deadline=None)
@given(ram=ram, vram=vram, n_ctx=st.sampled_from([2048, 8192, 32768]))
def test_no_plan_exceeds_its_budget_and_every_rejection_has_a_reason(ram, vram, n_ctx):
    try:
        r = plan(pc(ram, vram), Constraints(n_ctx=n_ctx))
    except QwenctlError as e:
        assert e.code == ExitCode.NO_FIT and e.message
        return
    for p in [r.chosen] + [a.plan for a in r.alternatives if a.rejected is None]:
        for pool in p.memory:
            assert pool.used_bytes <= pool.budget_bytes
    for a in r.alternatives:
        assert a.reason.strip()
        if a.rejected == "memory":
            assert any(pool.used_bytes > pool.budget_bytes for pool in a.plan.memory)


def test_seed_gtx_1050_runs_7b_at_4_bits_or_lower_split_with_an_honest_speed():
    """4 GB of GDDR5 at 112 GB/s and DDR4-2400 dual channel (38.4 GB/s) behind it: a 7B does not fit the
    GPU, so most of its layers go there and the rest stream from RAM. Both halves cost tens of ms a token,
    so the prediction is single digits, and its slow end (a split's 0.35 of the prediction, never below
    the CPU alone) still clears the 5 tok/s floor."""
    hw = load_profile("gtx-1050-4gb-laptop")
    assert nvidia_specs.gpu_spec_of(hw.gpus[0])["key"] == "gtx-1050-laptop"  # its 4 GB: no desktop GTX 1050 has them
    c = plan(hw).chosen
    assert c.size == "7B" and c.quant in ("q4_k_m", "q4_0", "q3_k_m", "q2_k") and c.device == "cuda"
    assert 0 < c.n_gpu_layers < c.n_layers
    gpu, host = c.speed.terms
    assert gpu.decode_s > 0.01 and host.decode_s > 0.01
    assert 5 <= c.tg_tps <= 15 and c.tg_tps_low >= 5


def test_seed_pi_4_gets_a_3_bit_or_smaller_model_at_3_tok_s_or_more():
    """Cortex-A72s without dot product and a memory system that streams 5.56 GB/s of its 12.8 GB/s peak: the 0.5B
    (a 1.5B would run near 3.5 tok/s, as a 1B reads at 4.6 on published Pi 4 rows), under the 5 tok/s floor."""
    c = plan(load_profile("raspberry-pi-4-4gb")).chosen
    assert c.quant in ("q3_k_m", "q2_k") or float(c.size.rstrip("B")) <= 1.5
    assert c.tg_tps >= 3


def test_seed_cpu_laptop_figures_stay_in_the_band_the_issue_names():
    c = plan(load_profile("laptop-16gb-cpu-only")).chosen
    assert (c.size, c.quant) == ("7B", "q4_k_m") and 3 <= c.tg_tps <= 8
