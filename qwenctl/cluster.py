"""Other machines' devices a plan may use: llama.cpp RPC workers, probed live or described in a profile.

A worker is one ``qwenctl worker`` (llama.cpp's RPC server) at ``host:port``. What the planner
needs of it: the memory each of its devices has free (asked over the RPC protocol itself), what
the machine is (its ``Hardware``: from the worker's info answer or a profile; None when unknown,
and the plan then says what it assumed), and the link to it (round trip measured when probed,
bandwidth stated by a profile or assumed).
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenctl.hardware.facts import Hardware


@dataclass(frozen=True)
class RemoteDevice:
    """One device a worker offers, as llama.cpp's RPC server reports it."""

    name: str  # the worker's name for it: "CPU", "CUDA0"
    description: str  # "NVIDIA H200", "Intel Xeon ..."; the name again where the worker says nothing more
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class Link:
    """The network between this machine and a worker."""

    rtt_s: float  # one request's round trip
    bandwidth_bytes_per_s: float
    source: str  # "measured: 12 round trips to 10.0.0.2:50052", "profile: gigabit Ethernet (...)"
    assumed: tuple[str, ...] = ()  # figures that were not measured or sourced


@dataclass(frozen=True)
class Worker:
    endpoint: str  # "host:port"
    devices: tuple[RemoteDevice, ...]
    hardware: Hardware | None  # the worker machine's facts; None when it did not say
    link: Link
    protocol: str = ""  # the RPC protocol version it speaks, "7.0.0"

    @property
    def free_bytes(self) -> int:
        return sum(d.free_bytes for d in self.devices)
