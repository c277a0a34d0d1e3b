"""What `qwenctl run` shows before the chat opens: steps, the plan in a few lines, the
download question and progress, the smoke test. All on stderr, so stdout carries only
the replies (`qwenctl run -p ... > answer.txt` works).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from qwenctl.render import human_bytes, plural
from qwenctl.render.chat import make_console

if TYPE_CHECKING:
    from rich.progress import Progress

    from qwenctl.fetch import PullProgress
    from qwenctl.pipeline import Started
    from qwenctl.plan import Plan, PlanResult
    from qwenctl.smoke import SmokeTest


class RunReporter:
    """Draws the pipeline's progress; `ask` is None when no one can answer a question.

    `quiet`: no steps, plan or progress (--json); `silent`: no warnings either, stderr for errors only (-q);
    `brief`: the plan in one line, as a scripted one-shot wants it.
    """

    def __init__(self, console: Console | None = None, ask: Callable[[str], bool] | None = None, quiet: bool = False,
                 silent: bool = False, brief: bool = False):
        self.console = console or make_console(sys.stderr)
        self.ask = ask
        self.quiet = quiet or silent
        self.silent = silent
        self.brief = brief
        self._progress: Progress | None = None
        self._task = None

    def step(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[chat.meta]{escape(message)}[/]")

    def plan(self, result: PlanResult) -> None:
        for warning in result.warnings:
            self.warn(warning)
        if not self.quiet:
            for line in plan_lines(result.chosen)[: 1 if self.brief else None]:
                self.console.print(escape(line))

    def confirm_download(self, what: str, size_bytes: int | None) -> bool:
        if self.ask is None:
            return False
        size = f" ({human_bytes(size_bytes)})" if size_bytes else ""
        return self.ask(f"download {what}{size}?")

    def download(self, progress: PullProgress) -> None:
        if self.quiet:
            return
        if progress.resumed_from:
            from qwenctl.render.models import resuming

            resuming(self.console, progress)
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(progress.filename, total=progress.total_bytes)
        self._progress.update(self._task, completed=progress.done_bytes, description=progress.filename)
        if progress.done_bytes >= progress.total_bytes:
            self._progress.stop()
            self._progress = None

    def smoke(self, result: SmokeTest) -> None:
        if not self.quiet:
            predicted = f" (predicted {result.predicted_tps:.1f})" if result.predicted_tps else ""
            self.console.print(
                f"[chat.meta]smoke test: {plural(result.generated_tokens, 'token')} in {result.seconds:.1f} s, "
                f"{result.decode_tps:.1f} tok/s{predicted}[/]"
            )
        if result.warning:
            self.warn(result.warning)

    def note(self, message: str) -> None:
        if not self.silent:
            self.console.print(f"[chat.meta]{escape(message)}[/]")

    def sizing(self, what: str, size_bytes: int) -> None:
        if not self.quiet:
            self.console.print(f"[chat.meta]{escape(what)}: {human_bytes(size_bytes)}[/]")

    def warn(self, message: str) -> None:
        if not self.silent:
            self.console.print(f"[chat.warn]warning: {escape(message)}[/]")


def model_facts(started: Started) -> list[tuple[str, str]]:
    """What the chat's /show tells of the loaded model: where it came from, how it runs, what was predicted."""
    p = started.prepared
    session = started.session
    o = p.load_options
    layers = "all layers" if session.n_gpu_layers < 0 else plural(session.n_gpu_layers, "layer")
    threads = f", {plural(o.n_threads, 'thread')}" if o.n_threads else ""
    server = getattr(session, "server", None)  # a resident server answers (backends/remote.py)
    engine = (f"{p.backend} in the running qwenctl serve at {server.url} (pid {server.pid})" if server is not None
              else f"{p.backend}, {layers} on the GPU{threads}, KV cache {o.kv_cache_type}")
    rows = [("model", p.model_name), ("file", p.files.load_path), ("engine", engine)]
    if p.plan is not None:
        memory = ", ".join(f"{human_bytes(m.used_bytes)} of {human_bytes(m.budget_bytes)} {m.name}" for m in p.plan.memory)
        rows.append(("plan", f"about {p.plan.tg_tps:.1f} tok/s predicted; {memory}"))
    if started.smoke is not None:
        rows.append(("smoke test", f"{started.smoke.decode_tps:.1f} tok/s measured"))
    return rows


def plan_lines(plan: Plan) -> list[str]:
    """The plan in a few lines: what, why, predicted memory and speed, download size."""
    if plan.spread:
        where = plan.spread
    elif plan.device == "cuda":
        layers = "all layers" if plan.n_gpu_layers == -1 else f"{plan.n_gpu_layers} of {plan.n_layers + 1} layers"
        where = f"{layers} on the GPU"
    else:
        where = plan.device.upper() if plan.device == "cpu" else plan.device
    memory = ", ".join(f"{human_bytes(p.used_bytes)} of {human_bytes(p.budget_bytes)} {p.name}" for p in plan.memory)
    approx = "" if plan.download_bytes_exact else "about "
    files = ", ".join(plan.files) if plan.files else "the whole repo"
    return [
        f"plan: Qwen2.5 {plan.name} on {plan.backend} ({where}), {plan.n_ctx:,}-token context",
        *(f"  why: {reason}" for reason in plan.reasons),
        f"  memory: {memory}",
        f"  speed: about {plan.tg_tps:.0f} tok/s generating (at least {plan.tg_tps_low:.0f}), {plan.pp_tps:.0f} tok/s reading the prompt",
        f"  download: {approx}{human_bytes(plan.download_bytes)} from {plan.repo} ({files})",
    ]
