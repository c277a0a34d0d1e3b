"""Host memory bandwidth: detected, or measured, never assumed silently.

Step 1, Apple Silicon: by chip and GPU (or CPU) core count (apple.py, data/apple_silicon.json).
Step 2, boards: Raspberry Pi and Jetson by board model (data/board_bandwidth.json).
Step 3, the DIMMs (dimms.py): SMBIOS type 17 speed x channels (EDAC's layout, else the locators'), read
from the raw tables (root) or the copy udev keeps for every user, no wider than the CPU's memory controller.
Step 4, a measurement cached by `qwenctl detect --measure` (bandwidth.py) for this machine.
Otherwise None, with the reason and the command that measures it; the planner then says it
assumed a figure.
"""

from __future__ import annotations

import re
from typing import Any

from qwenctl.hardware import bandwidth, dimms
from qwenctl.hardware._parse import data
from qwenctl.hardware.facts import AppleSilicon, Board, Cpu, Memory
from qwenctl.hardware.snapshot import Source

MEASURE_HINT = f"run `{bandwidth.MEASURED_BY}` to measure it"


def probe(source: Source, memory: Memory, cpu: Any, apple: Any, board: Any) -> tuple[int | None, str, bool]:
    """(bytes/s, where it came from, whether it was measured here) or (None, why it is not known, False).

    Every figure but a measurement is a specification's peak; a measurement is what the memory
    streamed, which the speed model prices at a higher share (speed_model.json's `_of_sustained`)."""
    if isinstance(apple, AppleSilicon):
        if apple.bandwidth_bytes_per_s:
            return apple.bandwidth_bytes_per_s, apple.bandwidth_source or apple.chip, False
        from qwenctl.hardware.apple import chip_bandwidth

        return None, f"{chip_bandwidth(apple.chip, apple.gpu_cores, None)[1]}; {MEASURE_HINT}", False
    reasons = []
    if isinstance(board, Board):
        found = board_bandwidth(board.model, board.ram_bytes or memory.total_bytes)
        if found:
            return *found, False
        reasons.append(f"no bandwidth on file for the board {board.model!r}")
    if source.system in ("Linux", "Windows"):
        value, how = dimms.bandwidth(source, memory_bus(cpu.brand) if isinstance(cpu, Cpu) else None)
        if value:
            return value, how, False
        reasons.append(how)
    measured = measured_bandwidth(source, cpu, memory)
    if measured:
        return *measured, True
    reasons.append(MEASURE_HINT)
    return None, "; ".join(reasons), False


def memory_bus(brand: str) -> dimms.Bus | None:
    """The widest DRAM bus the CPU named ``brand`` drives, where data/cpu_memory_bus.json lists its platform."""
    for row in data("cpu_memory_bus.json")["platforms"]:
        if re.search(row["pattern"], brand):
            return dimms.Bus(row["bus_bits"], row["platform"]) if row["bus_bits"] else None
    return None


def _board_row(model: str, ram_bytes: int | None) -> dict | None:
    for row in data("board_bandwidth.json")["boards"]:
        if not all(word in model for word in row["match"]):
            continue
        if row.get("ram_below_bytes") and not (ram_bytes and ram_bytes < row["ram_below_bytes"]):
            continue
        return row
    return None


def board_bandwidth(model: str, ram_bytes: int | None) -> tuple[int, str] | None:
    row = _board_row(model, ram_bytes)
    return (row["bytes_per_s"], f"{model}: {row['memory']} (board_bandwidth.json)") if row else None


def soc_typical(soc: str | None) -> tuple[int, str] | None:
    """(bytes/s, what it is) most boards of ``soc`` fit: an assumption for a board with no row of its own, which the
    planner states as one (an RK3588 board runs LPDDR4X-4224 or LPDDR5 at 4,800-5,472 MT/s, so its SoC bounds its
    bandwidth far better than a generic fallback, but does not settle it)."""
    for row in data("board_bandwidth.json")["socs"]:
        if soc and soc.upper().startswith(row["match"]):
            return row["bytes_per_s"], f"{row['match']} board: {row['memory']}"
    return None


def board_sustained(model: str, ram_bytes: int | None) -> tuple[int, str] | None:
    """(bytes/s, source) of what a board's memory system really streams, where published and far below its peak."""
    sustained = (_board_row(model, ram_bytes) or {}).get("sustained")
    return (sustained["bytes_per_s"], f"{model}: {sustained['_source']}") if sustained else None


def machine_key(cpu: Any, memory: Memory) -> str | None:
    if not isinstance(cpu, Cpu):
        return None
    return bandwidth.machine_key(cpu.brand, memory.total_bytes, cpu.physical_cores)


def measured_bandwidth(source: Source, cpu: Any, memory: Memory) -> tuple[int, str] | None:
    key = machine_key(cpu, memory)
    record = source.measured_bandwidth().get(key) if key else None
    if not isinstance(record, dict) or not isinstance(record.get("bytes_per_s"), int):
        return None
    return record["bytes_per_s"], str(record.get("source") or f"measured by {bandwidth.MEASURED_BY}")

