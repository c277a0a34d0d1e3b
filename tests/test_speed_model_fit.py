"""The fitting script's narrowing: refitting one CUDA decode kernel's constant, or one memory's share, moves that
constant and nothing else; and what it fits on.

The fit itself is a benchmark (benchmarks/speed_model_fit.py prints its held-out figures); what a test can hold is that
`--only cuda-kernels --kernel Q` and `--only lpddr` cannot quietly change the constants they were not asked to, that
naming a type no fitting row decodes stops instead of recording a refit that fitted nothing, and that a row priced on
the fallback host bandwidth is scored but never fitted.
"""

from __future__ import annotations

import copy
import json

import pytest
from benchmark_scripts import load

from qwenctl.device_speed import load_speed_model


def shipped_rows():
    """(the fitting script, every published row prepared, the shipped split's role of each device)."""
    fit_script = load("speed_model_fit.py")
    doc = json.loads(fit_script.DATA.read_text())
    rows = fit_script.prepare(doc, doc.get("cpu_hosts", {}))
    return fit_script, rows, fit_script.shipped_split(rows)


@pytest.fixture
def fitting():
    fit_script, rows, role = shipped_rows()
    model = load_speed_model()  # the cached dict every prediction reads; the fit changes it in place
    shipped = copy.deepcopy(model)
    yield fit_script, *fit_script.fitting_set(rows, role), model
    model.clear()
    model.update(shipped)


def test_one_kernel_refit_moves_that_constant_only(fitting):
    fit_script, rows, obs, model = fitting
    units = model["engines"]["cuda"]["unit_bytes_per_cycle"]
    before = copy.deepcopy(model)
    units["Q8_0"] = 5.0  # far from where its fitting rows put it
    start = fit_script.loss(obs)
    fit_script.fit(rows, obs, sweeps=1, only="cuda-kernels", kernel="q8_0")
    assert fit_script.loss(obs) < start
    assert units["Q8_0"] != 5.0
    moved = copy.deepcopy(model)
    moved["engines"]["cuda"]["unit_bytes_per_cycle"]["Q8_0"] = before["engines"]["cuda"]["unit_bytes_per_cycle"]["Q8_0"]
    assert moved == before


def test_the_f16_kernel_refit_moves_its_cycle_counts_only(fitting):
    """F16's kernel is priced by its geometry, with two fitted cycle counts (speed_model.json engines.cuda.f16_mmv)
    that the H100's F16 rows and the GeForce cards' pull-request rows set: `--kernel F16` moves them and no
    `unit_bytes_per_cycle` entry."""
    fit_script, rows, obs, model = fitting
    f16 = model["engines"]["cuda"]["f16_mmv"]
    before = copy.deepcopy(model)
    f16["trip_cycles"] = 2000.0  # three times where the rows put it
    start = fit_script.loss(obs)
    fit_script.fit(rows, obs, sweeps=1, only="cuda-kernels", kernel="f16")
    assert fit_script.loss(obs) < start
    assert f16["trip_cycles"] < 1000.0
    moved = copy.deepcopy(model)
    for key in ("row_cycles", "trip_cycles"):
        moved["engines"]["cuda"]["f16_mmv"][key] = before["engines"]["cuda"]["f16_mmv"][key]
    assert moved == before
    assert "F16" not in model["engines"]["cuda"]["unit_bytes_per_cycle"]


def test_the_quantized_kernels_refit_leaves_the_f16_kernels_cycle_counts(fitting):
    """`--only cuda-kernels` refits the quantized kernels' bytes in flight and a row's cycles, not the F16 kernel's two
    cycle counts: only F16 rows inform those, and they lie in a flat valley (18.5 and 102 row cycles within 0.5 % of
    each other's loss), where a refit for the quantized kernels would move them for nothing (session 54)."""
    fit_script, rows, obs, model = fitting
    f16 = model["engines"]["cuda"]["f16_mmv"]
    f16["trip_cycles"] = 2000.0  # three times where the rows put it: a fit that could move it would
    before = copy.deepcopy(f16)
    fit_script.fit(rows, obs, sweeps=1, only="cuda-kernels")
    assert f16 == before


def test_the_cuda_prompt_refit_moves_cudas_prompt_constants_only(fitting):
    """`--only cuda-prompt` refits CUDA's prompt per-layer cycles of both kernel paths and the matrix efficiencies of its
    engine and NVIDIA's paths; the CPU's and Apple's prompt constants, which `--only prompt` would refit too, stay."""
    fit_script, rows, obs, model = fitting
    cuda = model["engines"]["cuda"]
    before = copy.deepcopy(model)
    cuda["pp_per_layer_cycles_fp16"] = 2e6  # five times where the F16 rows put it
    start = fit_script.loss(obs)
    fit_script.fit(rows, obs, sweeps=1, only="cuda-prompt")
    assert fit_script.loss(obs) < start
    assert cuda["pp_per_layer_cycles_fp16"] < 1e6
    moved = copy.deepcopy(model)
    for key in ("pp_per_layer_cycles", "pp_per_layer_cycles_fp16", "pp_efficiency"):
        moved["engines"]["cuda"][key] = before["engines"]["cuda"][key]
    for name, family in moved["families"].items():
        if name.startswith("nvidia-") and "pp_efficiency" in family:
            family["pp_efficiency"] = before["families"][name]["pp_efficiency"]
    assert moved == before


def test_lpddr_refit_moves_that_share_only(fitting):
    fit_script, rows, obs, model = fitting
    before = copy.deepcopy(model)
    model["memory_efficiency"]["lpddr"] = 0.45  # far from where the Pi 5's and the AmpereOne's rows put it
    start = fit_script.loss(obs)
    fit_script.fit(rows, obs, sweeps=1, only="lpddr")
    assert fit_script.loss(obs) < start
    assert model["memory_efficiency"]["lpddr"] != 0.45
    moved = copy.deepcopy(model)
    moved["memory_efficiency"]["lpddr"] = before["memory_efficiency"]["lpddr"]
    assert moved == before


def test_pascals_share_refit_moves_that_share_only(fitting):
    """`--only gpu-family-memory` fits the DRAM share of the GPU families listed in OWN_DRAM_SHARE (Pascal, on its two
    fitting devices, the P40 and the Titan Xp) and nothing else: GDDR's share, fitted on Turing and later cards, stays."""
    fit_script, rows, obs, model = fitting
    assert {r["_device"] for r in rows if r["_family"] == "nvidia-pascal"} == {"tesla-p40", "titan-xp"}
    before = copy.deepcopy(model)
    model["families"]["nvidia-pascal"]["memory_efficiency"] = 0.95  # GDDR's share and more: where the P40 read 1.10x
    start = fit_script.loss(obs)
    fit_script.fit(rows, obs, sweeps=1, only="gpu-family-memory")
    assert fit_script.loss(obs) < start
    assert model["families"]["nvidia-pascal"]["memory_efficiency"] < 0.85
    moved = copy.deepcopy(model)
    moved["families"]["nvidia-pascal"]["memory_efficiency"] = before["families"]["nvidia-pascal"]["memory_efficiency"]
    assert moved == before


def test_a_q2_k_row_quantized_from_the_unpadded_weights_is_sized_by_its_recipe():
    """Qwen's own 72B files pad the feed-forward to 29,696; a file quantized from the unpadded weights (29,568, its
    ffn_down rows in fallback types) is told apart by its size, for Q2_K as for the other recipes: the H200's 72B Q2_K
    sweep file (29.8 GB) was priced as Qwen's padded file, 0.73 of measured, until the scorer knew Q2_K's recipe."""
    fit_script, rows, _ = shipped_rows()
    (row,) = [r for r in rows if r["id"] == "qwenctl-h200-s56-72b-80l-q2_k"]
    _, weights = row["_model"]
    assert weights.feed_forward_length is None
    official = [w for w in fit_script.load_catalog().model("72B").weights if w.quant == "q2_k" and w.format == "gguf"]
    assert official and official[0].feed_forward_length == 29696


def test_a_row_priced_on_the_fallback_bandwidth_is_scored_not_fitted():
    """The Radxa Dragon Q6A's specification gives no memory bandwidth, so its CPU row is priced on the 25.6 GB/s
    fallback: it counts in the fitting half's score, and no constant is fitted to it."""
    fit_script, rows, role = shipped_rows()
    fallback = [r for r in rows if "_skip" not in r and fit_script.on_assumed_bandwidth(r)]
    assert {r["_device"] for r in fallback} == {"cpu-qualcomm-qcs6490"}
    assert all(r["_host"].bandwidth_bytes_per_s == 25.6e9 for r in fallback)
    scored = {id(r) for r, *_ in fit_script.observations(rows, role, "fit")}
    usable, figures = fit_script.fitting_set(rows, role)
    assert {id(r) for r in fallback} <= scored
    assert not {id(r) for r in fallback} & ({id(r) for r in usable} | {id(r) for r, *_ in figures})
    assert {id(r) for r, *_ in figures} == scored - {id(r) for r in fallback}


def test_a_kernel_no_fitting_row_decodes_stops_the_fit(fitting):
    fit_script, rows, obs, model = fitting
    before = copy.deepcopy(model)
    with pytest.raises(SystemExit, match="no fitting row decodes iq2_xxs"):
        fit_script.fit(rows, obs, only="cuda-kernels", kernel="iq2_xxs")
    assert model == before


def test_a_figure_averaged_over_tests_is_priced_at_each_tests_depth(fitting):
    """LocalScore's generation figure is the mean of its tests' rates, each decoded after its prompt: the row is
    priced as the mean of `tg_at` at each test's mean depth, slower than the figure at 256 tokens of cache."""
    fit_script, rows, _, _ = fitting
    row = next(r for r in rows if r.get("_gpu") is not None and r.get("tg") and not r["tg"].get("per_token_batches"))
    plain, _ = fit_script.predict(row)
    tests = [[4096, 256], [64, 1024]]
    averaged, _ = fit_script.predict({**row, "tg": {**row["tg"], "mean_over": tests}})
    model, w = row["_model"]
    est = fit_script.estimate_speed(model, w, row["_gpu"], row["_host"], row["_ngl"], sampling=row["_sampled"],
                                    engine_date=row.get("date"), flash_attn=fit_script.flash_attn(row))
    assert averaged == pytest.approx((est.tg_at(4096 + 128) + est.tg_at(64 + 512)) / 2)
    assert averaged < plain


def test_a_row_measured_over_several_gpus_is_priced_as_their_layer_split(fitting):
    """A row with `gpus` ran llama-bench's default layer split over that many identical GPUs: priced by the same
    placement and estimate the planner uses, hops and all. On a build from before pipeline graphs (2025-05) the split
    decodes slower than the GPU alone; on the one qwenctl ships, about as fast (one hop: microseconds)."""
    fit_script, rows, _, _ = fitting
    row = next(r for r in rows if r.get("_gpu") is not None and r["_gpu"].family == "nvidia-ampere" and r.get("tg")
               and r["_ngl"] == -1 and not r["tg"].get("per_token_batches"))
    for date, slower in (("2025-02-21", 1.05), (None, 1.0)):
        one, _ = fit_script.predict({**row, "date": date})
        two, _ = fit_script.predict({**row, "date": date, "gpus": 2})
        assert one / two > slower and one / two < (1.5 if date else 1.01)


def test_scoring_a_file_of_other_rows_stops_with_one_line(tmp_path):
    """`--score` on published_splits.json (split and cluster rows, no backend) names the file, not a KeyError."""
    fit_script = load("speed_model_fit.py")
    doc = json.loads(fit_script.DATA.read_text())
    splits = fit_script.HERE / "published_splits.json"
    with pytest.raises(SystemExit, match="published_splits.json: not a file of speed rows"):
        fit_script.score_later_rows(splits, doc)
    empty = tmp_path / "empty.json"
    empty.write_text('{"rows": []}')
    with pytest.raises(SystemExit, match="empty.json: not a file of speed rows"):
        fit_script.score_later_rows(empty, doc)
