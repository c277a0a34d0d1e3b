"""How llama.cpp places a model over several devices, mirrored so a plan can predict each device's share.

llama.cpp (src/llama-model.cpp, ``load_tensors``) keeps the token embeddings on the host CPU and
offloads the LAST ``n_gpu_layers`` of the ``n_layers + 1`` slots (the repeating layers, then the
output layer); offloaded slot ``i`` goes to the first device whose cumulative, normalised share of
``tensor_split`` exceeds ``i / offloaded`` (``std::upper_bound`` over float32 split points).
Devices are ordered RPC workers first, then local GPUs (src/llama.cpp, default device selection).

Split modes (``llama_split_mode``): ``none`` uses the main GPU alone; ``layer`` gives each device
whole layers (a token passes the devices one after another); ``tensor`` cuts every weight matrix
across all devices (they work on every layer at once and add their partial results together).
"""

from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass

LLAMA_SPLIT_MODE = {"none": 0, "layer": 1, "tensor": 3}  # llama.h's enum llama_split_mode


def _f32(x: float) -> float:
    """x rounded to float32, as llama.cpp's `float` arithmetic rounds every step."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def split_points(proportions: tuple[float, ...]) -> list[float]:
    """The cumulative, normalised shares llama.cpp compares against, in its float32 arithmetic."""
    cumulative, total = [], 0.0
    for share in proportions:
        total = _f32(total + _f32(share))
        cumulative.append(total)
    return [_f32(c / total) for c in cumulative]


@dataclass(frozen=True)
class Placement:
    """Which device holds each repeating layer and the output layer (None: the host CPU)."""

    layer_device: tuple[int | None, ...]  # one entry per repeating layer
    output_device: int | None

    def layers_on(self, device: int | None) -> int:
        return len(self.indices_on(device))

    def indices_on(self, device: int | None) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.layer_device) if d == device)

    @property
    def path(self) -> list[int | None]:
        """The devices a token passes, in order: the host (embeddings), each layer's, the output's."""
        return [None, *self.layer_device, self.output_device]

    def boundaries(self) -> int:
        """How many times a token's activations move to another device on the way through the layers."""
        return sum(1 for a, b in zip(self.path, self.path[1:]) if a != b)


def place_layers(n_layers: int, n_gpu_layers: int, proportions: tuple[float, ...]) -> Placement:
    """llama.cpp's placement of a model with ``n_layers`` repeating layers over len(proportions) devices.

    ``n_gpu_layers`` as llama.cpp takes it: -1 (or more than n_layers) offloads every layer and the output.
    """
    if not proportions or n_gpu_layers == 0:
        return Placement((None,) * n_layers, None)
    offloaded = n_layers + 1 if n_gpu_layers < 0 else min(n_gpu_layers, n_layers + 1)
    first = max(n_layers + 1 - offloaded, 0)
    points = split_points(proportions)

    def device(slot: int) -> int | None:
        if slot < first:
            return None
        return bisect.bisect_right(points, _f32((slot - first) / offloaded))  # std::upper_bound

    return Placement(tuple(device(i) for i in range(n_layers)), device(n_layers))


def describe(split_mode: str | None, tensor_split: tuple[float, ...], main_gpu: int, over: tuple[str, ...] = ()) -> str | None:
    """A split in words, as plans, bench and serve say it: "tensor split over GPU 0, GPU 1 (50/50)", "one GPU
    (GPU 0)"; `over` names the devices (or the workers) where known. None for llama.cpp's default."""
    if split_mode is None:
        return None
    if split_mode == "none":
        return f"one GPU (GPU {main_gpu})"
    text = f"{split_mode} split" + (f" over {_devices(over)}" if over else "")
    if tensor_split:
        shares = [f"{100 * x / sum(tensor_split):.0f}" for x in tensor_split]
        text += f" (1/{len(shares)} each)" if len(shares) > 2 and len(set(shares)) == 1 else " (" + "/".join(shares) + ")"
    return text


GPU_LABEL = re.compile(r"GPU (\d+) \((.*)\)")  # what `gpu_label` writes


def gpu_label(index: int, name: str) -> str:
    """A local GPU as plans and their splits name it: "GPU 1 (NVIDIA H200)"."""
    return f"GPU {index} ({name})"


def _devices(names: tuple[str, ...]) -> str:
    """Devices in words: three or more GPUs of one model numbered in a row are one range ("GPU 0-7 (NVIDIA H200)")."""
    found = [GPU_LABEL.fullmatch(n) for n in names]
    if len(names) > 2 and all(found):
        numbers = [int(m.group(1)) for m in found if m]
        models = {m.group(2) for m in found if m}
        if len(models) == 1 and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"GPU {numbers[0]}-{numbers[-1]} ({models.pop()})"
    return ", ".join(names)


def workers_named(workers: tuple[str, ...]) -> tuple[str, ...]:
    """`describe`'s `over` for a load that knows only its workers' endpoints."""
    return ("workers " + ", ".join(workers),) if workers else ()


def proportions_by_room(room: tuple[int, ...]) -> tuple[float, ...]:
    """Shares in proportion to the memory each device has left for the model (what it can hold)."""
    total = sum(max(r, 0) for r in room)
    if total <= 0:
        return tuple(1.0 for _ in room)
    return tuple(round(max(r, 0) / total, 4) for r in room)
