"""Plans learn from what this machine measured: bench and smoke-test records correct later plans here only."""

from __future__ import annotations

from dataclasses import replace

import pytest
from planning_machines import pc
from rich.console import Console

from qwenctl import speed_history
from qwenctl.plan import Constraints, plan
from qwenctl.render.plan import render_plan, render_speed_terms


def test_a_recorded_bench_corrects_later_plans_on_the_same_machine():
    hw = pc(32, 8, gpu_name="NVIDIA GeForce RTX 4060", gpu_bw=272e9)
    before = plan(hw, Constraints(size="7B", quant="q4_k_m")).chosen
    raw = before.speed.tg_tps
    speed_history.record(hw, "llama.cpp", "cuda", raw, raw * 0.8, "bench")
    speed_history.record(hw, "llama.cpp", "cuda", raw, raw * 0.9, "bench")
    after = plan(hw, Constraints(size="7B", quant="q4_k_m")).chosen
    assert after.tg_tps == pytest.approx(raw * 0.85)
    assert after.speed.correction == pytest.approx(0.85)
    assert "corrected by your bench of" in after.speed.correction_source and "x0.85" in after.speed.correction_source
    con = Console(width=200, record=True)
    render_plan(plan(hw, Constraints(size="7B", quant="q4_k_m")), con)
    assert "corrected by your bench of" in con.export_text()


def test_records_of_another_machine_engine_or_a_profile_do_not_apply():
    hw = pc(32, 8, gpu_name="NVIDIA GeForce RTX 4060", gpu_bw=272e9)
    other = pc(64, 24, gpu_name="NVIDIA GeForce RTX 4090", gpu_bw=1008e9)
    speed_history.record(other, "llama.cpp", "cuda", 100.0, 50.0, "bench")
    speed_history.record(hw, "llama.cpp", "cpu", 10.0, 5.0, "bench")
    assert speed_history.correction(hw, "llama.cpp", "cuda") is None
    named = replace(hw, name="a profile of the same box")
    speed_history.record(hw, "llama.cpp", "cuda", 100.0, 50.0, "bench")
    assert plan(named).chosen.speed.correction == 1.0


def test_implausible_and_torn_records_are_ignored(tmp_path):
    hw = pc(16)
    path = tmp_path / "h.jsonl"
    speed_history.record(hw, "llama.cpp", "cpu", 10.0, 0.1, "bench", path=path)  # a throttled run, not a model error
    path.write_text(path.read_text() + '{"key": "torn')
    assert speed_history.correction(hw, "llama.cpp", "cpu", path=path) is None
    speed_history.record(hw, "llama.cpp", "cpu", 10.0, 12.0, "smoke test", path=path)
    c = speed_history.correction(hw, "llama.cpp", "cpu", path=path)
    assert c is not None and c.tg_factor == pytest.approx(1.2) and c.source == "smoke test"


def test_a_ratio_measured_against_another_speed_model_is_not_applied(tmp_path):
    """An upgrade that changes the speed model (its code or data) starts the machine's corrections afresh: a x0.5
    learned when the old model predicted twice too fast would halve the new model's right prediction. Records
    written before the model was recorded count as another model's."""
    import json

    hw = pc(16)
    path = tmp_path / "h.jsonl"
    speed_history.record(hw, "llama.cpp", "cpu", 20.0, 10.0, "bench", path=path)
    line = json.loads(path.read_text())
    assert line["speed_model"] == speed_history.speed_model_id()
    older = [dict(line, speed_model="0123456789abcdef"), {k: v for k, v in line.items() if k != "speed_model"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in older))
    assert speed_history.correction(hw, "llama.cpp", "cpu", path=path) is None
    speed_history.record(hw, "llama.cpp", "cpu", 10.0, 9.0, "bench", path=path)
    c = speed_history.correction(hw, "llama.cpp", "cpu", path=path)
    assert c is not None and c.runs == 1 and c.tg_factor == pytest.approx(0.9)


def test_a_bench_corrects_prompt_speed_by_its_own_ratio(tmp_path):
    """A bench times prompts too, and their error is not the decode's (the development VM's Zen 5: prompts 2.6x the
    prediction, decode 0.7x): a later plan scales each by its own median; a smoke test leaves prompts as priced."""
    hw = pc(16)
    path = tmp_path / "h.jsonl"
    speed_history.record(hw, "llama.cpp", "cpu", 10.0, 9.0, "smoke test", path=path)
    assert speed_history.correction(hw, "llama.cpp", "cpu", path=path).pp_factor is None
    speed_history.record(hw, "llama.cpp", "cpu", 10.0, 7.0, "bench", path=path, predicted_pp=100.0, measured_pp=260.0)
    speed_history.record(hw, "llama.cpp", "cpu", 10.0, 7.0, "bench", path=path, predicted_pp=100.0, measured_pp=280.0)
    c = speed_history.correction(hw, "llama.cpp", "cpu", path=path)
    assert c.tg_factor == pytest.approx(0.7) and c.pp_factor == pytest.approx(2.7)
    assert "prompts x2.70" in c.describe()


def test_a_plan_shows_the_prompt_speed_its_bench_measured():
    hw = pc(16)
    raw = plan(hw, Constraints(size="1.5B", quant="q4_k_m")).chosen
    speed_history.record(hw, "llama.cpp", "cpu", raw.tg_tps, raw.tg_tps, "bench",
                         predicted_pp=raw.pp_tps, measured_pp=raw.pp_tps * 2.5)
    after = plan(hw, Constraints(size="1.5B", quant="q4_k_m"))
    assert after.chosen.pp_tps == pytest.approx(raw.pp_tps * 2.5) and after.chosen.tg_tps == pytest.approx(raw.tg_tps)
    con = Console(width=200, record=True)
    render_speed_terms(after, con)
    assert f"x2.50 (your bench) -> {raw.pp_tps * 2.5:,.1f} tok/s" in con.export_text()


def test_a_run_corrects_plans_of_its_own_size_only():
    """The model's error on one machine is not one figure: fixed per-token costs weigh on small models and the memory
    on large ones (the development VM's Zen 4 decoded the 0.5B Q4_K_M at 0.90-1.12 of its prediction and the 1.5B
    at 1.14-1.32). A run corrects plans whose tokens read within `SIZE_SPAN` of its own, and only those."""
    hw = pc(64)

    def chosen(size):
        return plan(hw, Constraints(size=size, quant="q4_k_m")).chosen

    def read(p):
        return p.speed.bytes_read

    small, large = chosen("0.5B"), chosen("7B")
    speed_history.record(hw, "llama.cpp", "cpu", small.tg_tps, small.tg_tps * 0.7, "bench", read_bytes=read(small))
    assert chosen("0.5B").speed.correction == pytest.approx(0.7)
    assert chosen("7B").speed.correction == 1.0 and chosen("7B").tg_tps == pytest.approx(large.tg_tps)
    speed_history.record(hw, "llama.cpp", "cpu", large.tg_tps, large.tg_tps * 1.1, "bench", read_bytes=read(large))
    assert chosen("7B").speed.correction == pytest.approx(1.1)
    assert chosen("14B").speed.correction == pytest.approx(1.1)  # 1.9x the 7B's bytes: a neighbour
    assert chosen("0.5B").speed.correction == pytest.approx(0.7)  # the 7B's run is 12x away
    assert chosen("32B").speed.correction == 1.0
