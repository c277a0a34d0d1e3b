"""The fitting script's narrowing: refitting one CUDA decode kernel's constant moves that constant and nothing else.

The fit itself is a benchmark (benchmarks/speed_model_fit.py prints its held-out figures); what a test can hold is that
`--only cuda-kernels --kernel Q` cannot quietly change the constants it was not asked to, and that naming a type no
fitting row decodes stops instead of recording a refit that fitted nothing.
"""

from __future__ import annotations

import copy
import json

import pytest
from benchmark_scripts import load

from qwenctl.device_speed import load_speed_model


@pytest.fixture
def fitting():
    fit_script = load("speed_model_fit.py")
    doc = json.loads(fit_script.DATA.read_text())
    rows = fit_script.prepare(doc, doc.get("cpu_hosts", {}))
    role = fit_script.shipped_split(rows)
    fit_rows = [r for r in rows if role.get(r.get("_device")) == "fit"]
    model = load_speed_model()  # the cached dict every prediction reads; the fit changes it in place
    shipped = copy.deepcopy(model)
    yield fit_script, fit_rows, fit_script.observations(rows, role, "fit"), model
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
