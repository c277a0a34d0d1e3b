"""LocalScore's CPU results are scored only where the name names a CPU the published files already specify.

LocalScore records a CPU as llamafile prints it ("11th Gen Intel Core i5-1135G7 @ 2.40GHz (tigerlake)"); a near name
(the i7-8700K for the i7-8700, the Ryzen 9 7900 for the 7900X) is another chip, with other clocks, and must not match.
The names below are the accelerator names of LocalScore's results (localscore-insights, assets/localscore_results.tsv).
"""

from __future__ import annotations

import pytest
from benchmark_scripts import BENCHMARKS, load


@pytest.fixture
def converter(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the converter reads the published CPUs through the fit script
    return load("localscore_rows.py")


@pytest.mark.parametrize(("name", "key"), [
    ("11th Gen Intel Core i5-1135G7 @ 2.40GHz (tigerlake)", "cpu-intel-i5-1135g7"),
    ("AMD Ryzen AI 9 HX 370 w/ Radeon 890M", "cpu-amd-ryzen-ai-9-hx-370"),
    ("AMD Ryzen 9 7900X 12-Core Processor (znver4)", "cpu-amd-ryzen-9-7900x"),
    ("Intel N100 (alderlake)", "cpu-intel-n100"),
    ("Raspberry Pi 5 Model B Rev 1.0", "raspberry-pi-5"),
    ("Raspberry Pi 4 Model B Rev 1.1", "raspberry-pi-4"),
    ("Raspberry Pi 400 Rev 1.0", None),  # the BCM2711 at 1.8 GHz, not the specification's 1.5
    ("Intel Core i7-8700K CPU @ 3.70GHz (skylake)", None),  # the i7-8700 is specified, not the K
    ("AMD Ryzen 9 7900 12-Core Processor (znver4)", None),
])
def test_a_localscore_cpu_name_finds_only_its_own_specification(converter, name, key):
    assert converter.cpu_key(name, converter.published_cpu_hosts()) == key


def test_a_cpu_result_becomes_a_cpu_row_priced_over_the_nine_tests(converter):
    result = {"test_num": "236", "test_date": "2025.04.05 10:00:00", "gen_tps": "9.5", "model_name": "Llama 3.2 1B Instruct",
              "model_quant": "Q4_K - Medium", "accel_name": "Raspberry Pi 5 Model B Rev 1.0", "accel_type": "CPU",
              "accel_group": "", "accel_ram": "7.9", "accel_ram_unit": "GB", "system_cpu": "Raspberry Pi 5 Model B Rev 1.0",
              "system_os": "Linux"}
    row = converter.row(result, converter.published_cpu_hosts())
    assert (row["device_key"], row["backend"], row["model"], row["threads"]) == ("raspberry-pi-5", "cpu", "llama3.2-1b", None)
    assert row["tg"]["tps"] == 9.5 and row["tg"]["mean_over"] == converter.TESTS and row["flash_attn"] is False
    assert converter.row({**result, "model_quant": "Q8_0"}, converter.published_cpu_hosts()) is None
