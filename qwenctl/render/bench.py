"""Drawing for `qwenctl bench`: the progress while it runs, the result table, the history table."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from rich.table import Table

from qwenctl.render import console, human_bytes, human_rate, plural

_PHASES = {"load": "loading the model", "warm-up": "warm-up", "pp": "prompt processing",
           "tg": "decoding", "chat": "chat (sampling on the device)", "chat-host": "chat (sampling on the host)"}


@contextlib.contextmanager
def progress() -> Iterator:
    """A live progress line on stderr (nothing when stderr is not a terminal); yields bench's callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = console(stderr=True)
    if not con.is_terminal:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=con, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _tps(x: float | None) -> str:
    return "—" if x is None else f"{x:,.1f} tok/s"


def _spread(fig) -> str:
    return f"{fig.min:,.1f}–{fig.max:,.1f} (±{fig.spread / 2:.0%})"


def _vs(measured: float | None, predicted: float | None) -> str:
    if predicted is None:
        return ""
    if measured is None or not predicted:
        return f"{predicted:,.1f}"
    return f"{predicted:,.1f} ({(measured - predicted) / predicted:+.0%})"


def _vs_bytes(measured: int | None, predicted: int | None) -> str:
    if predicted is None:
        return ""
    delta = f" ({(measured - predicted) / predicted:+.0%})" if measured is not None and predicted else ""
    return human_bytes(predicted) + delta


def _device(r) -> str:
    if r.n_gpu_layers == 0:
        return f"CPU, {r.n_threads} threads" if r.n_threads else "CPU"
    layers = "all layers" if r.n_gpu_layers < 0 else f"{r.n_gpu_layers} layers"
    if r.split and "workers" in r.split:
        return f"{layers}, {r.split}"
    return f"GPU ({layers}; {r.split})" if r.split else f"GPU ({layers})"


def show_result(r) -> None:
    con = console()
    engine = f"{r.backend} {r.engine_version}" if r.engine_version else r.backend
    con.print(f"[bold]{Path(r.model).name}[/]  {engine}, {_device(r)}, ctx {r.n_ctx}, batch {r.n_batch}"
              + (", flash attention" if r.flash_attn else ""))
    con.print(f"[dim]{r.machine} · {r.started_at} · median of {r.repetitions} runs after one warm-up[/]")
    p = r.predicted
    t = Table(box=None, pad_edge=False)
    t.add_column("")
    t.add_column("measured", justify="right")
    t.add_column("min–max", justify="right", style="dim")
    if p:
        t.add_column("predicted", justify="right")
    rows = [
        (f"prompt processing (pp{r.n_prompt})", _tps(r.pp_tps.median), _spread(r.pp_tps), _vs(r.pp_tps.median, p and p.pp_tps)),
        (f"decoding, no sampling (tg{r.n_gen})", _tps(r.tg_tps.median), _spread(r.tg_tps), _vs(r.tg_tps.median, p and p.tg_tps)),
    ]
    if r.chat_tps:
        label = "chat, device sampling" if r.chat_host_tps else "chat generation, with sampling"
        rows.append((label, _tps(r.chat_tps.median), _spread(r.chat_tps), ""))
    if r.chat_host_tps:
        rows.append(("chat, host sampling", _tps(r.chat_host_tps.median), _spread(r.chat_host_tps), ""))
    if r.chat_ttft_seconds:
        ttft = r.chat_ttft_seconds
        rows.append((f"chat time to first token ({r.n_prompt}-token prompt)", f"{ttft.median * 1000:,.0f} ms",
                     f"{ttft.min * 1000:,.0f}–{ttft.max * 1000:,.0f} ms", ""))
    rows.append(("load time", f"{r.load_seconds:.2f} s", "", ""))
    if r.host_bytes is None:  # a record from before bench measured what the model holds
        rows.append(("peak host memory (RSS)", human_bytes(r.peak_host_rss_bytes), "", _vs_bytes(r.peak_host_rss_bytes, p and p.host_bytes)))
    else:
        rows.append(("host memory", human_bytes(r.host_bytes), "", _vs_bytes(r.host_bytes, p and p.host_bytes)))
    if r.gpu_bytes is not None or (p and p.gpu_bytes):
        rows.append(("GPU memory (NVML)", human_bytes(r.gpu_bytes), "", _vs_bytes(r.gpu_bytes, p and p.gpu_bytes)))
    predicted_each = p.gpu_bytes_by_device if p else ()
    for i, used in enumerate(r.gpu_bytes_by_device):
        guess = predicted_each[i] if i < len(predicted_each) else None
        rows.append((f"  GPU {i}", human_bytes(used), "", _vs_bytes(used, guess)))
    for row in rows:
        t.add_row(*(row if p else row[:3]))
    con.print(t)
    if r.roofline_tg_tps and r.bandwidth:
        con.print(f"roofline: {human_bytes(r.weights_read_per_token_bytes)} read per token at "
                  f"{human_rate(r.bandwidth.bytes_per_s)} ({r.bandwidth.source}) = {r.roofline_tg_tps:,.1f} tok/s; "
                  f"decoding reaches [bold]{r.tg_efficiency:.0%}[/] of it")
    elif r.weights_read_per_token_bytes:
        con.print(f"[dim]roofline: {human_bytes(r.weights_read_per_token_bytes)} read per token; "
                  "memory bandwidth unknown (pass --bandwidth, e.g. 3.35TB/s)[/]")
    if r.reclaimable_bytes:
        con.print(f"[dim]host memory leaves out {human_bytes(r.reclaimable_bytes)} of the model file that llama.cpp copied "
                  f"into its repack buffer at load: clean pages the OS drops when memory runs short, which RSS (peak "
                  f"{human_bytes(r.peak_host_rss_bytes)}) counts twice[/]")
    if p and p.source:
        con.print(f"[dim]predicted by {p.source}[/]")
    if r.chat_tps and r.chat_host_tps:
        con.print(f"chat ÷ decoding: [bold]{r.chat_tps.median / r.tg_tps.median:.2f}[/] with device sampling, "
                  f"{r.chat_host_tps.median / r.tg_tps.median:.2f} with host sampling")
        con.print(f"[dim]chat generates after its {r.n_prompt}-token prompt, decoding from an empty cache (as "
                  "llama-bench's tg): the ratio holds what that depth costs as well as sampling (on a CPU, often more)[/]")
    if r.sampling and not r.sampling.startswith("sampling on the device"):
        con.print(f"[yellow]note:[/] {r.sampling}")
    for note in r.notes:
        con.print(f"[yellow]note:[/] {note}")


def show_history(h) -> None:
    con = console()
    if not h.runs:
        con.print(f"no benchmark runs recorded yet ({h.path})")
        return
    con.print(f"[dim]{h.path}[/]", soft_wrap=True)
    for r in h.runs:  # two lines a run: fits 80 columns, unlike a ten-column table
        con.print(f"[bold]{r.started_at[:16].replace('T', ' ')}[/]  {os.path.basename(r.model)}  "
                  f"[dim]{r.backend} {r.engine_version or ''}, {_device(r)}[/]", soft_wrap=True)
        parts = [f"pp{r.n_prompt} {r.pp_tps.median:,.1f}", f"tg{r.n_gen} {r.tg_tps.median:,.1f}"]
        if r.chat_tps:
            parts.append(f"chat {r.chat_tps.median:,.1f}")
        if r.chat_host_tps:
            parts.append(f"host-sampled {r.chat_host_tps.median:,.1f}")
        line = "  ".join(parts) + " tok/s"
        if r.chat_ttft_seconds:
            line += f"  TTFT {r.chat_ttft_seconds.median * 1000:,.0f} ms"
        if r.gpu_bytes is not None:
            line += f"  GPU {human_bytes(r.gpu_bytes)}"
        if r.tg_efficiency:
            line += f"  {r.tg_efficiency:.0%} of roofline"
        con.print("    " + line, soft_wrap=True)
    if h.skipped_lines:
        con.print(f"[dim]{plural(h.skipped_lines, 'unreadable line')} skipped[/]")
