"""Draw a PlanResult: the chosen plan in a few lines, a memory bar per pool, ranked alternatives."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from qwenctl.kernels import F16_MMV, decode_kernel, emulates_dp4a
from qwenctl.machine import PoolUse
from qwenctl.plan import Plan, PlanResult
from qwenctl.profiles import ProfileInfo
from qwenctl.render import console as make_console
from qwenctl.render import human_bytes, plural
from qwenctl.speed import DeviceTerms, per_row_cycles

BAR_WIDTH = 40
# (field, glyph, style) in drawing order; "free" is what is left of the budget
_SEGMENTS = (("weights", "█", "cyan"), ("kv", "▓", "magenta"), ("buffers", "▒", "yellow"))


def _layers(plan: Plan, short: bool = False) -> str:
    """Offloaded layers as llama.cpp counts them: the repeating layers + the output layer (which goes first)."""
    if plan.device == "cuda" or plan.spread:
        if plan.n_gpu_layers < 0:
            return "all" if short else f"{plan.n_layers}/{plan.n_layers} + output"
        return f"{plan.n_gpu_layers}/{plan.n_layers + 1}"
    if plan.device == "metal":
        return "all" if short else "all (unified memory)"
    return "0" if short else "0 (CPU)"


def memory_bar(pool: PoolUse, width: int = BAR_WIDTH) -> Text:
    """weights | KV cache | buffers (compute + runtime) | free, scaled to the pool's budget."""
    scale = max(pool.budget_bytes, pool.used_bytes, 1)
    parts = {"weights": pool.weights_bytes, "kv": pool.kv_bytes, "buffers": pool.compute_bytes + pool.overhead_bytes}
    bar = Text("[")
    drawn = 0
    for key, glyph, style in _SEGMENTS:
        n = round(parts[key] / scale * width)
        n = min(n, width - drawn)
        bar.append(glyph * n, style=style)
        drawn += n
    bar.append("·" * (width - drawn), style="dim")
    bar.append("] ")
    bar.append(f"{human_bytes(pool.used_bytes)} of {human_bytes(pool.budget_bytes)}")
    free = pool.budget_bytes - pool.used_bytes
    bar.append(f", {human_bytes(free)} free" if free >= 0 else f", {human_bytes(-free)} over", style=None if free >= 0 else "red")
    return bar


def render_plan(result: PlanResult, out: Console | None = None, limit: int = 12) -> None:
    con = out or make_console()
    p = result.chosen
    where = result.hardware_name or "this machine"
    head = Text(f"Plan for {where}", style="bold")
    if result.assumptions:  # an assumed figure qualifies every figure below: say so first
        head.append(f" — assumes {result.assumptions[0]}", style="yellow")
    con.print(head)
    con.print(
        Text.assemble(
            ("  model     ", "dim"),
            (f"Qwen2.5-{p.size}-Instruct {p.quant_label}", "bold green"),
            f"  on {p.backend} ({p.device})",
        )
    )
    files = plural(len(p.files), "file") if p.files else "whole repo"
    size = human_bytes(p.download_bytes) + ("" if p.download_bytes_exact else " (computed)")
    con.print(Text.assemble(("  download  ", "dim"), f"{p.repo}  {files}, {size}"))
    con.print(
        Text.assemble(
            ("  settings  ", "dim"),
            f"GPU layers {_layers(p)} · context {p.n_ctx} · threads {p.n_threads} · KV cache {p.kv_cache_type}"
            f" · flash attention {'on' if p.flash_attn else 'auto'}",
        )
    )
    con.print(
        Text.assemble(
            ("  predicted ", "dim"),
            f"{p.tg_tps:.1f} tok/s generation (at least {p.tg_tps_low:.1f}; {p.tg_tps_full:.1f} with the context full), "
            f"{p.pp_tps:,.0f} tok/s prompt · quality score {p.quality:.1f}",
        )
    )
    if p.speed is not None and p.speed.correction_source:
        con.print(Text(f"            {p.speed.correction_source}", style="dim"))
    con.print(Text("  memory    ", style="dim") + Text("█ weights  ", style="cyan") + Text("▓ KV cache  ", style="magenta") + Text("▒ buffers  ", style="yellow") + Text("· free", style="dim"))
    for pool in p.memory:
        con.print(Text(f"    {pool.name}", style="bold"))
        con.print(Text("    ") + memory_bar(pool))
    con.print(Text("  why", style="dim"))
    for r in p.reasons:
        con.print(f"    - {r}")
    for w in result.assumptions[1:] + result.warnings:
        con.print(Text(f"  note: {w}", style="yellow"))

    if result.alternatives:
        table = Table(title="Alternatives, best first", title_justify="left", show_edge=False, pad_edge=False)
        for col, kw in (
            ("#", {"justify": "right"}),
            ("model", {"no_wrap": True}),
            ("GPU layers", {"no_wrap": True}),
            ("peak", {"justify": "right", "no_wrap": True}),
            ("tok/s", {"justify": "right"}),
            ("score", {"justify": "right"}),
            ("why not", {"ratio": 1}),
        ):
            table.add_column(col, **kw)
        for i, alt in enumerate(result.alternatives[:limit], start=2):
            peak = max(alt.plan.memory, key=lambda q: q.used_bytes)
            table.add_row(
                str(i),
                alt.plan.name,
                _layers(alt.plan, short=True),
                human_bytes(peak.used_bytes),
                f"{alt.plan.tg_tps:.1f}",
                f"{alt.plan.quality:.1f}",
                Text(alt.reason, style="red" if alt.rejected else "dim"),
            )
        con.print()
        con.print(table)
        hidden = len(result.alternatives) - limit
        if hidden > 0:
            con.print(Text(f"  ... {hidden} more (--json lists all)", style="dim"))


def render_profiles(profiles: tuple[ProfileInfo, ...], out: Console | None = None) -> None:
    con = out or make_console()
    table = Table(show_edge=False, pad_edge=False)
    for col in ("profile", "device", "accelerator", "RAM"):
        table.add_column(col)
    for info in profiles:
        acc = info.accelerator or "-"
        if info.accelerator and info.accelerator_memory_bytes:
            acc += f" ({human_bytes(info.accelerator_memory_bytes)})"
        title = f"{info.title} +{info.workers} worker{'s' if info.workers > 1 else ''}" if info.workers else info.title
        table.add_row(info.name, title, acc, human_bytes(info.ram_bytes))
    con.print(table)


def render_speed_terms(result: PlanResult, out: Console | None = None) -> None:
    """The speed model's terms for the chosen plan: where each millisecond of a token goes."""
    con = out or make_console()
    p = result.chosen
    if p.speed is None:
        return
    con.print(Text("Speed model (docs/planning.md), one generated token:", style="bold"))
    more = max(p.n_ctx - p.speed.depth_tokens, 0)  # cached tokens a full context adds to the depth tg_tps is for
    # a tensor split's devices are alike more often than not: one block for each run of equal terms
    runs: list[tuple[DeviceTerms, int]] = []
    for t in p.speed.terms:
        if runs and runs[-1][0] == t:
            runs[-1] = (t, runs[-1][1] + 1)
        else:
            runs.append((t, 1))
    no_dp4a = {d.name for d in result.devices if emulates_dp4a(d)}  # its decode kernel's instructions bind, not its reads
    rowed = {d.name for d in result.devices if per_row_cycles(d.engine)}
    devices = {d.name: d for d in result.devices}
    for t, count in runs:
        each = "" if count == 1 else f" x {count}, " + ("at once" if p.speed.concurrent else "one after another") + ", each"
        con.print(Text(f"  {t.device}{each}", style="bold"))
        rate = t.bytes_read / t.stream_s / 1e9 if t.stream_s else 0.0
        share = t.bandwidth_bytes_per_s * t.memory_efficiency / 1e9
        # every weight decoded by CUDA's F16 kernel, whose threads' round trips to memory bind
        f16 = t.device in rowed and bool(t.type_rates) and all(
            decode_kernel(k, devices[t.device])[0] == F16_MMV for k, _, _ in t.type_rates)
        fabric = devices[t.device].fabric_read_bytes_per_s / 1e9 if t.device in devices else 0.0
        bound = "" if rate >= 0.97 * share else ("; the core complexes' fabric links" if fabric and rate >= 0.97 * fabric else
                                                 "; lanes' limit, no dp4a" if t.device in no_dp4a else
                                                 "; the F16 kernel's round trips to memory" if f16 else
                                                 "; in-flight limit, less each matrix row's fixed cycles" if t.device in rowed
                                                 else "; in-flight limit")
        rows = (
            ("fixed", f"{t.layers} layers of kernel launches and syncs", t.fixed_s),
            # the rate reached: the DRAM's share, or less where the SMs (cores, threads) keep too little in flight,
            # which the line names so that the DRAM's figure is not read as the rate
            ("streaming", f"{t.bytes_read / 2**30:.2f} GiB at {rate:,.1f} GB/s (DRAM {t.bandwidth_bytes_per_s / 1e9:,.1f}"
                          f" x {t.memory_efficiency:.2f}{bound})", t.stream_s),
            # a recipe's types each at their own kernel's rate, where they differ (CUDA: what each keeps in flight)
            *((("by type", ", ".join(f"{k} {share:.0%} at {r / 1e9:,.0f}" for k, share, r in t.type_rates) + " GB/s", None),)
              if len({r for _, _, r in t.type_rates}) > 1 else ()),
            # CUDA has no such term: its kernels unpack while their loads are in flight (speed_model.json)
            *((("unpacking", "quantized blocks on the ALUs", t.dequant_s),) if t.dequant_s else ()),
            *((("threads", "multiplying; overlaps the two above, slower counts", t.threads_s),)
              if t.threads_s else ()),
            # a full context's further cached tokens: their K and V rows streamed, or (a CPU) attention on the threads
            ("context", f"{more:,} more cached: " + ("attention, threads" if t.context_threads_s > t.context_s
                                                        else "their K, V rows"), t.context_after(more)),
            ("prompt", f"512-token batch on the GPU: {t.pp_copy[0] / 2**30:.2f} GiB copied at {t.pp_copy[1] / 1e9:.1f} GB/s "
                       f"({t.pp_copy[2]}), matrix work" if t.pp_copy else
             "512-token batch: fixed, weight passes, matrix work" if round(t.pp_types, 2) == 1.0 else
             f"512-token batch; its weight types' kernels x{t.pp_types:.2f}", t.prompt_s),
        )
        for name, what, seconds in rows:
            con.print(f"    {name:<10} {what:<50}" + (f" {seconds * 1e3:9.3f} ms" if seconds is not None else ""))
    if p.speed.link_s:
        con.print(f"  {'links':<12} {'; '.join(p.speed.link_notes):<50} {p.speed.link_s * 1e3:9.3f} ms")
    total = p.speed.decode_s
    at_once = " (the devices at once: the slowest, then the links)" if p.speed.concurrent and len(p.speed.terms) > 1 else ""
    con.print(f"  decode total {total * 1e3:.3f} ms -> {1 / total:.1f} tok/s{at_once}" + (
        f"; x{p.speed.correction:.2f} ({p.speed.correction_source}) -> {p.tg_tps:.1f} tok/s" if p.speed.correction_source else ""))
    if p.speed.pp_correction != 1.0:
        con.print(f"  prompt {p.pp_tps / p.speed.pp_correction:,.1f} tok/s; x{p.speed.pp_correction:.2f} (your bench) "
                  f"-> {p.pp_tps:,.1f} tok/s")
    con.print(f"  with the context full ({p.n_ctx:,} tokens): {p.tg_tps_full:.1f} tok/s")
    first = p.speed.first_token_s(p.n_ctx)
    con.print(f"  a prompt that fills it: {first:,.1f} s to the first token ({p.n_ctx / first:,.0f} tok/s; "
              "each batch also attends to the ones before it)")
    used = {t.device for t in p.speed.terms}  # the slow end is widest where a device it runs on has an assumed bandwidth
    assumed = any(d.bandwidth_assumed for d in result.devices if d.name in used)
    con.print(f"  slow end: at least {p.tg_tps_low:.1f} tok/s, {p.tg_tps_low / p.tg_tps:.2f} of the estimate"
              + (" (a bandwidth assumed, not this machine's)" if assumed else ""))
    for d in result.devices:
        con.print(Text(f"  {d.name}: {d.family}, {d.engine}; " + "; ".join(d.sources + d.assumed), style="dim"))
