"""MLX's own pipeline over several Macs, planned on paper: what `mlx.launch` with mlx-lm's pipeline parallelism
would hold and how fast, for a plan whose workers are Apple Silicon machines.

qwenctl runs MLX on one machine and spreads llama.cpp over RPC workers; it does not start MLX's distributed
mode (a hostfile, ssh to every Mac, `mlx.launch`). What it can say is whether the Macs together would hold a
better model than this one alone: the layers are cut in proportion to each Mac's room (mlx-lm's pipeline
gives each rank a contiguous run of layers), each rank is a process with its own MLX context and prefill
buffers, and a token crosses the network once per boundary between Macs.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenctl.catalog import load_catalog
from qwenctl.cluster import Worker
from qwenctl.estimate import estimate_memory, kv_cache_bytes, weight_split
from qwenctl.hardware.facts import AppleSilicon
from qwenctl.machine import Machine, apple_device, host_budget
from qwenctl.speed import estimate_placed_speed
from qwenctl.split import place_layers, proportions_by_room


@dataclass(frozen=True)
class PaperPlan:
    name: str  # "72B MLX bf16"
    quality: float
    macs: int
    tg_tps: float
    bytes_per_mac: tuple[int, ...]
    budgets: tuple[int, ...]
    link: str  # the network the estimate assumed, in words

    def describe(self, here: str, here_quality: float) -> str:
        """In words, against the plan for this Mac alone (`here`)."""
        what = f"MLX's own pipeline over these {self.macs} Macs (`mlx.launch`, mlx-lm's pipeline parallelism)"
        if self.quality <= here_quality:
            return (f"on paper: {what} would hold nothing better than {here} on this Mac alone; pipelining does not "
                    "speed up one reply")
        held = ", ".join(f"{b / 2**30:.0f} of {c / 2**30:.0f} GiB" for b, c in zip(self.bytes_per_mac, self.budgets))
        return (f"on paper (qwenctl does not start it): {what} would hold {self.name} at about {self.tg_tps:.0f} tok/s "
                f"({held}; {self.link})")


def paper_plan(m: Machine, workers: tuple[Worker, ...], n_ctx: int) -> PaperPlan | None:
    """The best-quality MLX model this Mac and its Apple Silicon workers hold together (the smallest of equal
    quality); None without such workers."""
    macs = [w for w in workers if w.hardware is not None and isinstance(w.hardware.apple, AppleSilicon)]
    if m.backend != "mlx" or not macs or m.gpu_speed is None:
        return None
    devices = [(m.gpu_speed, m.unified_budget)]
    for w in macs:
        assert w.hardware is not None and isinstance(w.hardware.apple, AppleSilicon)
        budget = min(w.hardware.apple.gpu_wired_limit_bytes, host_budget(w.hardware)[0])
        devices.append((apple_device(w.hardware.apple, "mlx"), budget))
    catalog = load_catalog()
    candidates = [(model, weights) for model in catalog.models for weights in model.weights if weights.format == "mlx"]
    candidates.sort(key=lambda c: (-catalog.quality(*c), c[1].total_bytes))
    for model, weights in candidates:
        alone = estimate_memory(model, weights, "mlx", "metal", n_ctx).pools[0]
        fixed = alone.compute_bytes + alone.overhead_bytes  # every rank is a process with its buffers and context
        s = weight_split(catalog, model, weights)
        shares = proportions_by_room(tuple(budget - fixed for _, budget in devices))
        placement = place_layers(model.arch.n_layers, -1, shares)
        used = []
        for i in range(len(devices)):
            layers = placement.layers_on(i)
            used.append(round(layers * s.layer_bytes) + (s.embd_bytes if i == 0 else 0)
                        + (s.output_bytes if placement.output_device == i and s.output_in_file else 0)
                        + kv_cache_bytes(model, n_ctx, layers=layers) + fixed)
        if any(u > budget for u, (_, budget) in zip(used, devices)):
            continue
        speed = estimate_placed_speed(model, weights, tuple(d for d, _ in devices), m.host_speed, placement)
        # one hop per boundary between Macs: the activations (bf16) and the link's round trip
        hop_s = sum(w.link.rtt_s + 2 * model.arch.hidden_size * 2 / w.link.bandwidth_bytes_per_s for w in macs)
        link = "; ".join(dict.fromkeys(f"{w.link.source}" + (f" ({', '.join(w.link.assumed)} assumed)" if w.link.assumed else "")
                                       for w in macs))
        return PaperPlan(f"{model.size} {weights.label}", catalog.quality(model, weights), len(devices),
                         1 / (1 / speed.tg_tps + hop_s), tuple(used), tuple(b for _, b in devices), link)
    return None
