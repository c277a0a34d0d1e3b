"""Output habits: one unit system, plurals, whole lines when piped (issue 16, "Output")."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from qwenctl.cli import cli
from qwenctl.render import human_bytes, human_rate, plural


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (2048, "2 KiB"), (977 * 2**10, "977 KiB"), (5 * 2**30 + 2**29, "5.50 GiB"),
     (4_683_073_856, "4.36 GiB"), (2**41, "2.00 TiB"), (None, "?")],
    ids=["zero", "bytes", "kib", "under-a-mib", "gib", "a-7b-q4_k_m-file", "tib", "unknown"],
)
def test_sizes_are_binary(n, text):
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(25.6e9, "25.6 GB/s"), (3.35e12, "3.35 TB/s"), (287.4e6, "287.4 MB/s"), (12, "12 B/s")],
    ids=["ddr4", "h100", "download", "tiny"],
)
def test_rates_are_decimal(rate, text):
    assert human_rate(rate) == text


def test_plurals():
    assert [plural(n, "token") for n in (0, 1, 2, 1024)] == ["0 tokens", "1 token", "2 tokens", "1,024 tokens"]


def test_piped_output_is_never_hard_wrapped():
    """At 80 columns the plan's long lines used to be cut in two when piped; now each is whole."""
    result = CliRunner().invoke(cli, ["plan", "--profile", "raspberry-pi-5-8gb", "--size", "7B"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert "  settings  GPU layers 0 (CPU) · context 8192 · threads 4 · KV cache f16 · flash attention auto" in lines
    note = next(line for line in lines if line.startswith("  note: 7B Q4_K_M may generate"))
    assert note.endswith("expect slow replies, or ask for a smaller size")
    assert " GB " not in result.output and "GiB" in result.output  # memory and files alike
