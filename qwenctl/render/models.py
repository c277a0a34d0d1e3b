"""Drawing for pull, models and rm: a download progress bar, the cache listing, what was removed."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

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
        if p.resumed_from:
            resuming(self.out, p)
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


def resuming(out, p: PullProgress) -> None:
    """What an interrupted download left is not fetched again: say so."""
    out.print(f"resuming {p.filename}: {human_bytes(p.resumed_from)} already here", markup=False, highlight=False)


class PullReporter:
    """`pull`'s notes on stderr around its PullBar: which quant of a repo, the size of --all first."""

    def __init__(self, bar: PullBar, quiet: bool = False):
        self.bar = bar
        self.quiet = quiet
        self.err = console(stderr=True)

    def step(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, markup=False, highlight=False)

    def sizing(self, what: str, size_bytes: int) -> None:  # said even with --json: it is what --all will cost
        self.err.print(f"{what}: {human_bytes(size_bytes)}", markup=False, highlight=False)

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", markup=False)

    def note(self, message: str) -> None:
        self.err.print(message, markup=False, highlight=False)

    def download(self, progress: PullProgress) -> None:
        self.bar(progress)

    def plan(self, result) -> None:  # the Reporter protocol: pull says the plan in one step line
        pass

    def confirm_download(self, what: str, size_bytes: int | None) -> bool:
        return True  # pull is the request to download

    def smoke(self, result) -> None:
        pass


def pulled(result: ModelFiles) -> None:
    out = console()
    what = "downloaded " + human_bytes(result.downloaded_bytes) if result.downloaded_bytes else "already in the cache"
    check = "verified" if result.verified else "not verified"
    out.print(f"{result.repo} ({plural(len(result.filenames), 'file')}, {human_bytes(result.total_bytes)}): {what}, {check}")
    out.print(result.load_path, soft_wrap=True)


def model_list(result: ModelList) -> None:
    """One line per model, the spec last and whole (never cut to the terminal's width: it is what
    `rm` and `run` take), after a short name where the catalog has one (`7b:q4_k_m`)."""
    out = console()
    if not result.models:
        out.print(f"no Qwen2.5 models in {result.cache_dir}")
    else:
        rows = [("name", "quant", "size", "verified", "revision", "model")]
        for m in result.models:
            spec = m.spec + (f" (+{plural(len(m.files) - 1, 'part')})" if m.format == "gguf" and len(m.files) > 1 else "")
            rows.append((m.short_name or "-", m.quant or "?", human_bytes(m.size_bytes),
                         "yes" if m.verified else "no", ",".join(m.refs) or m.commit[:10], spec))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for i, row in enumerate(rows):
            cells = [c.rjust(w) if col == 2 else c.ljust(w) for col, (c, w) in enumerate(zip(row, widths))]
            out.print("  ".join([*cells, row[-1]]), soft_wrap=True, markup=False, style="bold" if i == 0 else None)
        out.print(f"cache: {result.cache_dir}", soft_wrap=True)
    if result.partial_bytes:
        out.print(f"unfinished downloads: {human_bytes(result.partial_bytes)} (the next pull resumes them)")


def removed(result: Removal, err: bool = False) -> None:
    verb = "would remove" if result.dry_run else "removed"
    console(stderr=err).print(f"{verb} {result.repo}: {plural(len(result.files), 'file')}, {human_bytes(result.freed_bytes)} {'would be freed' if result.dry_run else 'freed'}")
