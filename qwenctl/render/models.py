"""Drawing for pull, models and rm: a download progress bar, the cache listing, what was removed."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from rich.table import Table

from qwenctl.render import console, human_bytes, human_rate, plural

if TYPE_CHECKING:
    from qwenctl.fetch import ModelFiles, ModelList, PullProgress, Removal


class PullBar:
    """A progress callback for ``fetch.pull``: a rich bar (bytes, speed, ETA) on a terminal,
    a plain line every 10% (and at the end) otherwise, always on stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.out = console(stderr=True)
        self.live = self.out.is_terminal
        self._progress = None
        self._task = None
        self._next_pct = 0
        self._start: tuple[float, int] | None = None

    def __enter__(self) -> PullBar:
        if self.live:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.out,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, p: PullProgress) -> None:
        if self._start is None:
            self._start = (time.monotonic(), p.done_bytes)
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task(self.label, total=p.total_bytes, completed=p.done_bytes)
            self._progress.update(self._task, completed=p.done_bytes, description=p.filename)
            return
        pct = 100 * p.done_bytes // p.total_bytes if p.total_bytes else 100
        if p.done_bytes and pct >= self._next_pct:  # nothing at 0: a refused download says only why
            self._next_pct = (pct // 10 + 1) * 10
            elapsed = time.monotonic() - self._start[0]
            speed = (p.done_bytes - self._start[1]) / elapsed if elapsed > 0 else 0
            print(
                f"{self.label}: {pct}% {human_bytes(p.done_bytes)} of {human_bytes(p.total_bytes)}"
                + (f", {human_rate(speed)}" if speed else ""),
                file=sys.stderr,
                flush=True,
            )


def pulled(result: ModelFiles) -> None:
    out = console()
    what = "downloaded " + human_bytes(result.downloaded_bytes) if result.downloaded_bytes else "already in the cache"
    check = "verified" if result.verified else "not verified"
    out.print(f"{result.repo} ({plural(len(result.filenames), 'file')}, {human_bytes(result.total_bytes)}): {what}, {check}")
    out.print(result.load_path, soft_wrap=True)


def model_list(result: ModelList) -> None:
    out = console()
    if not result.models:
        out.print(f"no Qwen2.5 models in {result.cache_dir}")
    else:
        table = Table(box=None, pad_edge=False)
        for col in ("model", "format", "quant", "size", "verified", "revision"):
            table.add_column(col, justify="right" if col == "size" else "left")
        for m in result.models:
            name = m.spec + (f" (+{plural(len(m.files) - 1, 'part')})" if m.format == "gguf" and len(m.files) > 1 else "")
            table.add_row(
                name,
                m.format,
                m.quant or "?",
                human_bytes(m.size_bytes),
                "yes" if m.verified else "no",
                ",".join(m.refs) or m.commit[:10],
            )
        out.print(table)
        out.print(f"cache: {result.cache_dir}", soft_wrap=True)
    if result.partial_bytes:
        out.print(f"unfinished downloads: {human_bytes(result.partial_bytes)} (the next pull resumes them)")


def removed(result: Removal) -> None:
    verb = "would remove" if result.dry_run else "removed"
    console().print(f"{verb} {result.repo}: {plural(len(result.files), 'file')}, {human_bytes(result.freed_bytes)} {'would be freed' if result.dry_run else 'freed'}")
