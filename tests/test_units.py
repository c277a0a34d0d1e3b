import pytest

from qwenctl.units import parse_seconds, parse_size


@pytest.mark.parametrize("text, value, unit, rate", [
    ("8 GiB", 8 * 2**30, "gib", False),
    ("272 GB/s", 272 * 10**9, "gb", True),
    ("1 Gb/s", 10**9, "gb", True),  # "Gb" stays gigabytes: bits are spelt out
    ("1 Gbit/s", 125_000_000, "gbit", True),
    ("10Gbit/s", 1_250_000_000, "gbit", True),
    ("2.5 Gbit/s", 312_500_000, "gbit", True),
    ("100 Mbit/s", 12_500_000, "mbit", True),
    ("40 gbit/s", 5_000_000_000, "gbit", True),
    ("100e9", 100 * 10**9, None, False),
])
def test_sizes_and_rates(text, value, unit, rate):
    size = parse_size(text)
    assert size is not None and (size.value, size.unit, size.rate) == (value, unit, rate)


@pytest.mark.parametrize("text", ["", "lots", "1 Gbps", "1 gibit/s", "1 GB/h", "1e400 GB/s", "1e300 TB"])
def test_not_sizes(text):
    assert parse_size(text) is None


@pytest.mark.parametrize("text, seconds", [
    ("0.25 ms", 0.25e-3), ("250 us", 250e-6), ("250 \u00b5s", 250e-6), ("250 \u03bcs", 250e-6),
    ("1.5 s", 1.5), ("80ns", 80e-9), ("2 MS", 2e-3),
])
def test_durations(text, seconds):
    assert parse_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0.25", "1 min", "ms", "fast", "1e400 s"])
def test_not_durations(text):
    assert parse_seconds(text) is None
