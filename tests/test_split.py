"""Several devices: llama.cpp's placement rule, the memory per device, and the split the planner picks.

The profiles are real machines (profiles/*.toml, sourced); the figures the tests hold the planner to
were measured on two H200s (benchmarks/results/h200x2/multigpu.md).
"""

import re
from pathlib import Path

import pytest

from qwenctl.catalog import load_catalog
from qwenctl.errors import QwenctlError
from qwenctl.estimate import estimate_memory, estimate_split_memory
from qwenctl.hardware.cuda_visible import narrow_visible, select_gpus
from qwenctl.plan import Constraints, plan
from qwenctl.profiles import load_profile, load_workers
from qwenctl.split import place_layers

ROOT = Path(__file__).resolve().parent.parent


def spec(size: str, quant: str = "q4_k_m"):
    m = load_catalog().model(size)
    return m, next(w for w in m.weights if w.quant == quant and w.format == "gguf")


def test_output_layer_is_offloaded_first_as_llama_cpp_counts():
    # n_gpu_layers counts the output layer as the last of n_layers + 1: 5 = the output and 4 repeating layers
    p = place_layers(28, 5, (1.0,))
    assert p.layers_on(0) == 4 and p.output_device == 0 and p.layer_device[:24] == (None,) * 24
    everything = place_layers(28, -1, (1.0,))
    assert everything.layers_on(0) == 28 and everything.output_device == 0
    assert place_layers(28, 0, (1.0,)).layers_on(None) == 28


def test_two_equal_gpus_split_as_llama_cpp_does():
    # 29 slots over split points 0.5/1.0: slot i goes to the first device whose point exceeds i/29, so
    # GPU 0 takes slots 0..14 (15 layers) and GPU 1 the other 13 layers and the output
    p = place_layers(28, -1, (0.5, 0.5))
    assert (p.layers_on(0), p.layers_on(1), p.output_device) == (15, 13, 1)
    assert p.boundaries() == 2  # host (embeddings) -> GPU 0 -> GPU 1 (the last layers and the output)
    uneven = place_layers(28, -1, (1.0, 3.0))
    assert uneven.layers_on(0) < uneven.layers_on(1)


def test_split_memory_keeps_every_weight_once():
    m, w = spec("7B")
    for mode, shares in (("layer", (0.5, 0.5)), ("layer", (0.3, 0.7)), ("tensor", (0.5, 0.5))):
        est = estimate_split_memory(m, w, 8192, mode, place_layers(m.arch.n_layers, -1, shares), shares, ("gpu", "gpu"))
        assert abs(sum(p.weights_bytes for p in est.pools) - w.total_bytes) <= m.arch.n_layers
        one = estimate_memory(m, w, "llama.cpp", "cuda", 8192, -1, flash_attn=True)
        # two GPUs hold the same KV cache between them, and each its own CUDA context
        assert sum(p.kv_bytes for p in est.pools) == one.pool("vram").kv_bytes
        assert est.pool("vram").overhead_bytes == one.pool("vram").overhead_bytes


def test_two_h200s_tensor_split_7b_one_gpu_for_0_5b():
    """What the two-H200 machine measured: tensor split decodes 7B Q4_K_M 13 % faster than one GPU (321.0 vs
    282.7 tok/s, llama-bench), while for 0.5B the all-reduces cost more than the halved reads (608.8 vs 911.9)."""
    hw = load_profile("h200-x2-141gb")
    seven = plan(hw, Constraints(size="7B", quant="q4_k_m")).chosen
    assert seven.split_mode == "tensor" and seven.tensor_split == (0.5, 0.5) and seven.n_gpu_layers == -1
    assert any("tensor split: predicted" in r and "one GPU" in r and "layer split" in r for r in seven.reasons)
    gpus = [p for p in seven.memory if p.pool == "vram"]
    assert len(gpus) == 2 and gpus[0].used_bytes == gpus[1].used_bytes
    small = plan(hw, Constraints(size="0.5B", quant="q4_k_m")).chosen
    assert small.split_mode == "none" and small.main_gpu == 0
    idle = [p for p in small.memory if p.pool == "vram" and p.weights_bytes == 0]
    assert len(idle) == 1 and idle[0].name.startswith("GPU 1") and 0.4 * 2**30 < idle[0].used_bytes < 0.6 * 2**30
    r = next(r for r in small.reasons if r.startswith("one GPU: predicted"))
    assert "tensor split" in r


def test_a_model_too_big_for_one_gpu_is_split_and_fits_each():
    hw = load_profile("rtx-3090-x2-24gb")
    chosen = plan(hw, Constraints(size="32B", quant="q8_0", n_ctx=4096)).chosen  # 32.4 GiB: more than one 3090
    assert chosen.split_mode in ("layer", "tensor")
    gpus = [p for p in chosen.memory if p.pool == "vram"]
    assert len(gpus) == 2 and all(p.used_bytes <= p.budget_bytes for p in gpus)
    one = plan(select_gpus(hw, "0"), Constraints(size="32B", quant="q8_0", n_ctx=4096)).chosen
    assert one.split_mode == "none" and one.n_gpu_layers not in (-1, 0)  # one 3090: a partial offload
    assert chosen.tg_tps > 2 * one.tg_tps


def test_gpus_narrows_a_profile_and_cuda_visible_devices():
    hw = load_profile("h200-x8-141gb")
    two = select_gpus(hw, "3,5")
    assert [g.index for g in two.gpus] == [0, 1]
    assert narrow_visible(None, "3,5") == "3,5"
    assert narrow_visible("GPU-aa,GPU-bb,GPU-cc", "2,0") == "GPU-cc,GPU-aa"
    for bad in ("a", "1,1", "-1", ""):
        with pytest.raises(QwenctlError, match="--gpus"):
            select_gpus(hw, bad)
    with pytest.raises(QwenctlError, match="no GPU 9"):
        select_gpus(hw, "9")
    with pytest.raises(QwenctlError, match="no GPU 2 among"):
        narrow_visible("4,5", "2")
    with pytest.raises(QwenctlError, match="there is no GPU 1 .this machine has GPUs 0-0"):
        narrow_visible(None, "1", gpu_count=1)
    with pytest.raises(QwenctlError, match="no NVIDIA GPU"):
        narrow_visible(None, "0", gpu_count=0)


def test_pi_cluster_spreads_by_room_and_says_what_it_assumed():
    hw = load_profile("raspberry-pi-5-8gb-x4-cluster")
    workers = load_workers("raspberry-pi-5-8gb-x4-cluster")
    result = plan(hw, Constraints(size="14B", quant="q4_k_m"), workers)
    chosen = result.chosen
    assert chosen.split_mode == "layer" and len(chosen.workers) == 3
    assert 0 < chosen.n_gpu_layers <= chosen.n_layers  # this Pi keeps the first layers
    pools = {p.name: p for p in chosen.memory}
    assert all(p.used_bytes <= p.budget_bytes for p in pools.values())
    assert pools["RAM"].weights_bytes > 0.15 * chosen.download_bytes  # the main Pi holds a share, not nothing
    assert any("round trip" in a for a in result.assumptions)
    # decoding visits the devices one after another: no faster than one Pi streaming the whole model
    alone = plan(hw, Constraints(size="7B", quant="q4_k_m")).chosen
    assert chosen.tg_tps < alone.tg_tps


def test_gpus_that_do_not_exist_are_one_line_at_the_command_line():
    from click.testing import CliRunner

    from qwenctl.cli import cli
    from qwenctl.errors import ExitCode

    result = CliRunner().invoke(cli, ["plan", "--profile", "h200-x2-141gb", "--gpus", "3"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.output.strip().splitlines()[-1].startswith("error: --gpus 3: there is no GPU 3")
    one = CliRunner().invoke(cli, ["plan", "--profile", "h200-x2-141gb", "--gpus", "1", "--size", "7B", "--json"])
    assert one.exit_code == 0 and '"split_mode": "none"' in one.output


def test_mlx_pipeline_over_macs_is_planned_on_paper(tmp_path):
    """Two 16 GB MacBook Airs: alone one runs 14B 4-bit; MLX's own pipeline over both would hold 14B 8-bit,
    said as a note that qwenctl does not start it. Two 192 GB Mac Studios gain nothing in quality."""
    air = tmp_path / "two-airs.toml"
    base = (ROOT / "profiles" / "macbook-air-m2-16gb.toml").read_text()
    air.write_text(base.replace("[sources]", '[[worker]]\nprofile = "%s"\n\n[network]\nbandwidth = "10 Gbit/s"\n'
                                'rtt = "0.2 ms"\nassumed = ["rtt"]\n\n[sources]\nnetwork = "Thunderbolt bridge: 10 Gbit/s"\n'
                                % (ROOT / "profiles" / "macbook-air-m2-16gb.toml"), 1))
    result = plan(load_profile(str(air)), workers=load_workers(str(air)))
    assert result.chosen.backend == "mlx" and result.chosen.name == "14B MLX 4-bit"
    note = next(w for w in result.warnings if w.startswith("on paper"))
    assert "would hold 14B MLX 8-bit" in note and "qwenctl does not start it" in note and "mlx.launch" in note
    studios = "mac-studio-m2-ultra-192gb-x2-cluster"
    big = plan(load_profile(studios), workers=load_workers(studios))
    assert any("would hold nothing better than 72B" in w for w in big.warnings)


def test_eight_gpus_name_the_fewer_gpus_a_tensor_split_runs_faster_on():
    """Each all-reduce of a tensor split waits on every GPU it spans (ceil(log2 n) exchanges: speed_model.json
    `links`) while each GPU's reads shrink as 1/n, so for a small model fewer GPUs are faster. llama.cpp spans every
    GPU CUDA shows it, so on eight H200s the plan keeps what it can run with all eight visible (one GPU, or a tensor
    split over all eight: the faster) and names the faster count, as the --gpus that gets it; that narrower machine
    plans the figure it named."""
    hw = load_profile("h200-x8-141gb")
    ask = Constraints(size="7B")
    chosen = plan(hw, ask).chosen
    assert chosen.split_mode == "none" or (len(chosen.tensor_split) == 8 and all(x > 0 for x in chosen.tensor_split))
    advice = re.search(r"over (\d) of the 8 GPUs is predicted at (\d+) tok/s \(`--gpus ([\d,]+)`\)", chosen.split_reason)
    assert advice, chosen.split_reason
    count, figure, gpus = int(advice.group(1)), float(advice.group(2)), advice.group(3)
    assert 2 <= count < 8 and gpus == ",".join(map(str, range(count))) and figure > 1.05 * chosen.tg_tps
    narrower = plan(select_gpus(hw, gpus), ask).chosen
    assert narrower.split_mode == "tensor" and round(narrower.tg_tps) == figure
    # the 72B reads enough that all eight are fastest: nothing to name
    assert "--gpus" not in plan(hw, Constraints(size="72B", quant="q5_0")).chosen.split_reason
    assert "--gpus" not in plan(load_profile("h200-x2-141gb"), ask).chosen.split_reason  # two GPUs: no count to choose


def test_explain_speed_names_each_worker_of_a_cluster():
    """Four Pi 5s have one name; the speed terms of a split over them say which worker each block is."""
    from click.testing import CliRunner

    from qwenctl.cli import cli

    r = CliRunner().invoke(cli, ["plan", "--profile", "raspberry-pi-5-8gb-x4-cluster", "--size", "14B", "--explain-speed"])
    assert r.exit_code == 0, r.output
    blocks = [line.strip() for line in r.output.splitlines() if line.startswith("  ") and not line.startswith("   ")
              and "Pi 5" in line and ":" in line and "cpu-arm" not in line]
    workers = [b for b in blocks if b.startswith("worker ")]
    assert len(workers) == 3 and len({w.split(":")[0] for w in workers}) == 3, blocks
    assert "3 visits to RPC workers per token" in r.output


def test_an_all_reduce_takes_log2_exchanges_of_the_gpus_it_spans():
    """llama.cpp's tensor split reduces its partial sums in ceil(log2 n) exchanges between pairs of GPUs
    (ggml-backend-meta.cpp n_reduce_steps), not a ring's n - 1: over NVLink, whose activations move in microseconds,
    a token's link time on 4 and 8 H200s is 2x and 3x that on 2 (it was 3x and 7x)."""
    hw = load_profile("h200-x8-141gb")
    # the 72B: a split beats one GPU by far at every count, where a 7B's may not (one GPU is then planned, with no link)
    chosen = {n: plan(select_gpus(hw, ",".join(map(str, range(n)))), Constraints(size="72B", quant="q4_k_m")).chosen
              for n in (2, 4, 8)}
    assert {c.split_mode for c in chosen.values()} == {"tensor"}
    links = {n: c.speed.link_s for n, c in chosen.items()}
    assert links[4] / links[2] == pytest.approx(2.0, rel=0.01)
    assert links[8] / links[2] == pytest.approx(3.0, rel=0.01)


def test_a_split_over_many_alike_gpus_reads_as_one_range():
    from qwenctl.split import describe

    eight = tuple(f"GPU {i} (NVIDIA H200)" for i in range(8))
    assert describe("tensor", (1.0,) * 8, 0, eight) == "tensor split over GPU 0-7 (NVIDIA H200) (1/8 each)"
    two = eight[:2]
    assert describe("tensor", (0.5, 0.5), 0, two) == "tensor split over GPU 0 (NVIDIA H200), GPU 1 (NVIDIA H200) (50/50)"
    mixed = ("GPU 0 (NVIDIA GeForce RTX 4090)", "GPU 1 (NVIDIA GeForce RTX 3090)", "GPU 2 (NVIDIA GeForce RTX 3090)")
    assert describe("layer", (0.5, 0.25, 0.25), 0, mixed) == f"layer split over {', '.join(mixed)} (50/25/25)"
    gap = eight[:2] + eight[3:4]  # GPU 0, 1, 3: not one range
    assert describe("tensor", (1.0,) * 3, 0, gap) == f"tensor split over {', '.join(gap)} (1/3 each)"
