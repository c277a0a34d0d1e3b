"""bench's history: one JSON line per run (the versioned envelope of a ``BenchResult``), appended
atomically, read back skipping what a killed run left half-written. ``qwenctl bench --history`` shows it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from qwenctl.bench import Bandwidth, BenchResult, Figure, Predicted

HISTORY_SCHEMA = "bench"


def history_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("qwenctl")) / "bench-history.jsonl"


def append_history(result: BenchResult, path: Path | None = None) -> Path:
    """Append one JSON line. A single O_APPEND write per record, so concurrent runs never interleave
    within a line, and a crash leaves at most one partial last line (which read_history skips)."""
    from qwenctl.files import append_line
    from qwenctl.result import envelope

    path = path or history_path()
    append_line(path, json.dumps(envelope(HISTORY_SCHEMA, result)))
    return path


def _figure(d: dict | None) -> Figure | None:
    return Figure(d["median"], d["min"], d["max"], tuple(d["samples"])) if d else None


def result_from_dict(d: dict) -> BenchResult:
    """Rebuild a BenchResult from its JSON form (the history file, `--json` output)."""
    fields = {f.name for f in dataclasses.fields(BenchResult)}
    kw = {k: v for k, v in d.items() if k in fields}
    for k in ("pp_tps", "tg_tps", "chat_ttft_seconds", "chat_tps", "chat_host_tps"):
        kw[k] = _figure(kw.get(k))
    kw["bandwidth"] = Bandwidth(**kw["bandwidth"]) if kw.get("bandwidth") else None
    if kw.get("predicted"):
        kw["predicted"] = Predicted(**{**kw["predicted"], "gpu_bytes_by_device": tuple(kw["predicted"].get("gpu_bytes_by_device") or ())})
    kw["notes"] = tuple(kw.get("notes") or ())
    kw["gpu_bytes_by_device"] = tuple(kw.get("gpu_bytes_by_device") or ())
    return BenchResult(**kw)


@dataclass(frozen=True)
class History:
    path: str
    runs: tuple[BenchResult, ...]
    skipped_lines: int  # unreadable lines (a run killed mid-write, or a newer schema)


def read_history(path: Path | None = None) -> History:
    path = path or history_path()
    runs, skipped = [], 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError):  # no history yet, or none can be (a file where a folder goes)
        lines = []
    for line in lines:
        try:
            d = json.loads(line)
            if d.get("schema") != HISTORY_SCHEMA:
                raise ValueError
            runs.append(result_from_dict(d))
        except (ValueError, KeyError, TypeError):
            skipped += 1
    return History(str(path), tuple(runs), skipped)
