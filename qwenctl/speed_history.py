"""What this machine measured against what qwenctl predicted, so later plans learn from it.

Every ``bench`` and every ``run`` smoke test records (predicted, measured) generation speed
for the machine it ran on, and a bench its prompt speed too; ``correction`` gives later plans on
the same machine, engine and device the median measured/predicted ratio of the latest runs, each
speed its own. A plan for another machine (a profile, a snapshot of another box) never matches:
records are keyed by the machine's identity (GPU UUIDs, CPU, RAM), not by a name.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from qwenctl.hardware.facts import AppleSilicon, Cpu, Hardware, Memory

LATEST = 8  # runs that count: the newest on this machine, engine and device
# A run corrects plans whose tokens read within this factor of its own (a size's neighbours: 0.5B / 1.5B / 3B / 7B /
# 14B files are 2-2.5x apart). The model's error is not one figure a machine: fixed per-token costs weigh on small
# models and the memory on large ones (the development VM's Zen 4: 0.5B Q4_K_M decode 0.90-1.12 of its prediction,
# 1.5B 1.14-1.32, 7B 1.07; benchmarks/published_cpu_sweeps.json), so a bench of the 0.5B would move a 1.5B plan wrong.
SIZE_SPAN = 2.5
_PLAUSIBLE = (0.2, 5.0)  # ratios outside this were a broken run (a throttled or shared device), not a model error
# What a prediction is made of: the speed model's code and the data it reads. A ratio measured against one version
# of them says nothing about another's predictions (session 16's thread term took this VM's 1.5B from 22.3 tok/s
# predicted to 12.1 against 9.8 measured, so a x0.57 learned before would have put it 30 % low).
_MODEL_PARTS = (("qwenctl", "speed.py"), ("qwenctl", "machine.py"), ("qwenctl.hardware", "nvidia_specs.py"),
                ("qwenctl.hardware", "apple_specs.py"), ("qwenctl.hardware", "cpu_specs.py"),
                ("qwenctl.data", "speed_model.json"), ("qwenctl.hardware.data", "devices.json"),
                ("qwenctl.hardware.data", "board_bandwidth.json"), ("qwenctl.hardware.data", "apple_silicon.json"))


def history_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("qwenctl")) / "speed-history.jsonl"


def machine_key(hw: Hardware) -> str:
    """A stable identity of the machine: the same box gives the same key across runs."""
    parts = [hw.system, hw.machine]
    if isinstance(hw.cpu, Cpu):
        parts += [hw.cpu.brand, str(hw.cpu.physical_cores)]
    if isinstance(hw.memory, Memory):
        parts.append(str(hw.memory.total_bytes // 2**30))
    if isinstance(hw.apple, AppleSilicon):
        parts += [hw.apple.chip, str(hw.apple.gpu_cores)]
    parts += [g.uuid or g.name for g in hw.gpus]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@functools.cache
def speed_model_id() -> str:
    """The identity of the speed model this qwenctl predicts with: a hash of `_MODEL_PARTS`."""
    h = hashlib.sha256()
    for package, name in _MODEL_PARTS:
        h.update(resources.files(package).joinpath(name).read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Correction:
    tg_factor: float
    runs: int
    last_date: str  # YYYY-MM-DD of the newest run
    source: str  # "bench" | "smoke test"
    # the prompt's own ratio, from the benches among those runs (a smoke test times no full prompt batch); a prompt's
    # error is not its decode's: where the cores run faster than the clock they report, prompts gain, reads do not
    pp_factor: float | None = None

    def describe(self) -> str:
        prompt = f", prompts x{self.pp_factor:.2f}" if self.pp_factor is not None else ""
        return f"corrected by your {self.source} of {self.last_date}: x{self.tg_factor:.2f}{prompt}" + (
            f" (median of {self.runs} runs)" if self.runs > 1 else "")


@dataclass(frozen=True)
class Run:
    """One recorded run's measured/predicted ratios, and the bytes each of its tokens read (None: not recorded)."""

    tg_ratio: float
    date: str
    source: str
    pp_ratio: float | None = None
    read_bytes: float | None = None


def record(hw: Hardware, backend: str, device: str, predicted_tg: float, measured_tg: float, source: str,
           path: Path | None = None, predicted_pp: float | None = None, measured_pp: float | None = None,
           read_bytes: float | None = None) -> None:
    """Append one run (files.append_line: concurrent runs never interleave within a line); a bench's prompt
    speed, predicted and measured for the same batch, with it; ``read_bytes``: the weights a token of it read, so
    it corrects plans of its size only (`SIZE_SPAN`)."""
    if not (predicted_tg > 0 and measured_tg > 0):
        return
    from qwenctl.files import append_line

    prompt = ({"predicted_pp": predicted_pp, "measured_pp": measured_pp}
              if (predicted_pp or 0) > 0 and (measured_pp or 0) > 0 else {})
    size = {"read_bytes": round(read_bytes)} if read_bytes and read_bytes > 0 else {}
    append_line(path or history_path(), json.dumps({
        "key": machine_key(hw), "backend": backend, "device": device, "predicted_tg": predicted_tg,
        "measured_tg": measured_tg, **prompt, **size, "source": source, "date": time.strftime("%Y-%m-%d"),
        "speed_model": speed_model_id()}), durable=False)


def model_key(load_path: str | os.PathLike[str]) -> str:
    """A model file's identity: its real path (a content hash in the HF cache and Ollama's store) and size."""
    real = os.path.realpath(load_path)
    size = os.stat(real).st_size if os.path.isfile(real) else 0
    return hashlib.sha256(f"{real}|{size}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SmokeRecord:
    """A smoke test this machine ran on this model file: later runs skip theirs (`run --smoke-test` forces one)."""

    date: str
    measured_tg: float
    predicted_tg: float | None


def record_smoke(hw: Hardware, load_path: str, backend: str, measured_tg: float, predicted_tg: float | None,
                 path: Path | None = None) -> None:
    """Remember that this model passed its smoke test here (with no prediction for a plan-less model)."""
    from qwenctl.files import append_line

    append_line(path or history_path(), json.dumps({
        "key": machine_key(hw), "model": model_key(load_path), "backend": backend, "predicted_tg": predicted_tg,
        "measured_tg": measured_tg, "source": "smoke test", "date": time.strftime("%Y-%m-%d")}), durable=False)


def last_smoke(hw: Hardware, load_path: str, backend: str, path: Path | None = None) -> SmokeRecord | None:
    """The latest smoke test of this model file on this machine and engine, if there was one."""
    path = path or history_path()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError, PermissionError, UnicodeDecodeError):
        return None
    key, model = machine_key(hw), model_key(load_path)
    for line in reversed(lines):
        try:
            r = json.loads(line)
            if r.get("key") == key and r.get("model") == model and r.get("backend") == backend:
                return SmokeRecord(str(r["date"]), float(r["measured_tg"]), r.get("predicted_tg"))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return None



def runs(hw: Hardware, backend: str, device: str, path: Path | None = None) -> tuple[Run, ...]:
    """This machine's runs on this engine and device, oldest first, whose prediction came from this speed model (a run
    recorded by another version, or before versions were recorded, measured another model's error)."""
    path = path or history_path()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError, PermissionError, UnicodeDecodeError):
        return ()
    key = machine_key(hw)
    found = []
    for line in lines:
        try:
            r = json.loads(line)
            if (r["key"] == key and r["backend"] == backend and r["device"] == device
                    and r.get("speed_model") == speed_model_id()):
                ratio = float(r["measured_tg"]) / float(r["predicted_tg"])
                prompt = float(r["measured_pp"]) / float(r["predicted_pp"]) if "predicted_pp" in r else None
                size = float(r["read_bytes"]) if r.get("read_bytes") else None
                if _PLAUSIBLE[0] <= ratio <= _PLAUSIBLE[1]:
                    found.append(Run(ratio, str(r["date"]), str(r["source"]),
                                     prompt if prompt is not None and _PLAUSIBLE[0] <= prompt <= _PLAUSIBLE[1] else None,
                                     size))
        except (ValueError, KeyError, TypeError, ZeroDivisionError):
            continue  # a torn or foreign line
    return tuple(found)


def correction_for(measured: tuple[Run, ...], read_bytes: float | None = None) -> Correction | None:
    """The median measured/predicted of the latest runs of a size near ``read_bytes`` (the weights a token of the
    planned model reads; `SIZE_SPAN`); a run that recorded no size, and a plan of no size, match every size."""
    near = [r for r in measured if not (read_bytes and r.read_bytes)
            or max(read_bytes, r.read_bytes) <= SIZE_SPAN * min(read_bytes, r.read_bytes)]
    if not near:
        return None
    latest = near[-LATEST:]
    prompts = [r.pp_ratio for r in latest if r.pp_ratio is not None]
    return Correction(statistics.median(r.tg_ratio for r in latest), len(latest), latest[-1].date, latest[-1].source,
                      statistics.median(prompts) if prompts else None)


def correction(hw: Hardware, backend: str, device: str, path: Path | None = None,
               read_bytes: float | None = None) -> Correction | None:
    """`correction_for` this machine's runs on this engine and device."""
    return correction_for(runs(hw, backend, device, path), read_bytes)
