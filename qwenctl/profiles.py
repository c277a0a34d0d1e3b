"""Hardware profiles: real devices described in TOML, loaded into the ``Hardware`` detect returns.

A profile lets ``qwenctl plan --profile NAME`` answer "what would this machine run?" and is
the planner's test matrix. Shipped profiles live in the repository's ``profiles/`` folder,
packaged as ``qwenctl.bundled_profiles``; a path to any ``.toml`` file works too.

Sizes are written as text with units ("8 GiB", "272 GB/s") or as plain integers (bytes).
Every section (cpu, memory, gpu, apple, board) must cite where its figures come from in
``[sources]``; a profile without sources is refused, as is any missing or malformed field,
with the file and the field named.

A profile may also describe a cluster: other machines serving their devices to this one as llama.cpp
RPC workers (``qwenctl worker`` there, ``--workers host:port,...`` here), and the network between::

    [[worker]]
    profile = "raspberry-pi-5-8gb"   # a shipped profile's name, or a path (relative to this file)
    count = 3                        # machines of that kind; default 1

    [network]
    bandwidth = "1 Gbit/s"           # link rate to each worker
    rtt = "0.25 ms"                  # one request's round trip
    assumed = ["rtt"]                # optional: figures not measured or published (rtt, bandwidth)

Rates may be written in bits ("1 Gbit/s", see units.py). ``[network]`` is required with workers (and refused without), and ``[sources]`` needs ``network``;
the worker profiles carry their own sources. A worker profile may not itself list workers.
``hardware_from_profile`` describes the main machine only; ``load_workers`` gives the workers as
``cluster.Worker`` values (what a ``qwenctl worker`` there would offer, on paper).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from qwenctl import files
from qwenctl.cluster import Link, RemoteDevice, Worker
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware import nvidia_specs
from qwenctl.hardware.apple import wired_limit
from qwenctl.hardware.facts import (
    Absent,
    AppleSilicon,
    Backends,
    Board,
    Cpu,
    Hardware,
    Memory,
    Nvidia,
    NvidiaGpu,
)
from qwenctl.units import parse_seconds, parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_SECTIONS_NEEDING_SOURCES = ("cpu", "memory", "gpu", "apple", "board", "network")
WORKER_PORT = 50052  # llama.cpp rpc-server's default port (tools/rpc/README.md)


@dataclass(frozen=True)
class ProfileInfo:
    """One line of ``qwenctl profiles``."""

    name: str  # file stem, what --profile takes
    title: str  # the profile's display name
    path: str
    ram_bytes: int
    accelerator: str | None  # GPU or Apple chip name; None for CPU-only machines
    accelerator_memory_bytes: int | None  # VRAM, or the GPU wired limit on Apple; None when shared/absent
    workers: int = 0  # other machines the profile lists as RPC workers


@dataclass(frozen=True)
class ProfileList:
    """What ``qwenctl profiles --json`` prints."""

    profiles: tuple[ProfileInfo, ...]


class _Reader:
    """Typed access to a parsed TOML table that names the file and field on every error."""

    def __init__(self, path: str, table: dict[str, Any], prefix: str = ""):
        self.path, self.table, self.prefix = path, table, prefix
        self.read: set[str] = set()

    def fail(self, key: str, problem: str) -> QwenctlError:
        return QwenctlError(
            f"profile {self.path}: field '{self.prefix}{key}' {problem}",
            hint="see docs/planning.md for the profile format",
            code=ExitCode.BAD_INPUT,
        )

    def has(self, key: str) -> bool:
        return key in self.table

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.read.add(key)
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        value = self.table[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(key, f"must be {names}, got {value!r}")
        return value

    def int_pair(self, key: str, names: str, minimum: int) -> tuple[int, int] | None:
        """An optional [a, b] of whole numbers of at least ``minimum`` (``names``: "major, minor" for the message)."""
        pair = self.get(key, list, None)
        if pair is not None and (len(pair) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= minimum
                                                            for x in pair)):
            raise self.fail(key, f"must be [{names}], got {pair!r}")
        return (pair[0], pair[1]) if pair is not None else None

    def int_(self, key: str, default: Any = ..., minimum: int = 1) -> Any:
        given = key in self.table
        value = self.get(key, int, default)
        if given and value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, list, [])
        if not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.get(key, str)
        if value not in allowed:
            raise self.fail(key, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def done(self) -> None:
        """Refuse keys nothing read: a typo ("physical_core") would otherwise pass silently."""
        unknown = sorted(set(self.table) - self.read)
        if unknown:
            raise self.fail(unknown[0], "is not a profile field (misspelt?)")

    def bytes_(self, key: str, default: Any = ..., rate: bool = False) -> Any:
        self.read.add(key)
        if key not in self.table and default is not ...:
            return default
        value = self.get(key, (int, str))
        if isinstance(value, int):
            if value <= 0:
                raise self.fail(key, f"must be positive, got {value}")
            return value
        size = parse_size(value)
        if size is None or size.unit is None or size.rate != rate:
            example = "'272 GB/s'" if rate else "'8 GiB'"
            raise self.fail(key, f"must be a size like {example} or an integer, got {value!r}")
        n = size.value
        if n <= 0:
            raise self.fail(key, f"must be positive, got {value!r}")
        return n

    def seconds_(self, key: str) -> float:
        value = self.get(key, str)
        seconds = parse_seconds(value)
        if seconds is None:
            raise self.fail(key, f"must be a duration like '0.25 ms', got {value!r}")
        if seconds <= 0:
            raise self.fail(key, f"must be positive, got {value!r}")
        return seconds

    def sub(self, key: str) -> _Reader:
        value = self.get(key, dict)
        return _Reader(self.path, value, f"{self.prefix}{key}.")


# the system and machine names Python reports that the planner knows (Windows reports AMD64 and ARM64)
SYSTEMS = ("Linux", "Darwin", "Windows")
MACHINES = ("x86_64", "AMD64", "aarch64", "arm64", "ARM64", "armv7l", "armv6l", "riscv64", "ppc64le", "s390x")


@dataclass(frozen=True)
class _WorkerEntry:
    """One [[worker]] table, its profile not yet resolved."""

    profile: str
    count: int
    index: int  # its place among the [[worker]] tables, for error messages


@dataclass(frozen=True)
class _Network:
    rtt_s: float
    bandwidth_bytes_per_s: int
    source: str
    assumed: tuple[str, ...]  # the figures the profile says are assumed, not measured or published


def hardware_from_profile(path: str | Path) -> Hardware:
    """Parse one profile file into ``Hardware``; a malformed one raises QwenctlError naming file and field.
    A cluster profile's [[worker]] and [network] tables are checked here and left out of the Hardware
    (it describes the main machine): ``load_workers`` reads them."""
    return _read_profile(Path(path))[0]


def _read_profile(path: Path) -> tuple[Hardware, tuple[_WorkerEntry, ...], _Network | None]:
    text = files.read_text(path, "profile")  # bytes, as UTF-8 (BOM dropped); folders, binaries, Latin-1 refused
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise QwenctlError(f"profile {path}: not valid TOML: {e}", code=ExitCode.BAD_INPUT) from None
    r = _Reader(str(path), doc)
    name = r.get("name", str)
    machine = r.choice("machine", MACHINES)
    system = r.choice("system", SYSTEMS)

    sources = r.sub("sources") if r.has("sources") else None
    for section in _SECTIONS_NEEDING_SOURCES:
        if r.has(section) and (sources is None or not sources.has(section)):
            raise r.fail(f"sources.{section}", f"is missing: every figure in [{section}] needs a source")
    source_lines: list[str] = []
    if sources is not None:
        for key, value in sources.table.items():
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
                raise sources.fail(key, "must be a non-empty string or list of strings")
            source_lines.extend(f"{key}: {s}" for s in items)

    c = r.sub("cpu")
    physical, flags = c.int_("physical_cores"), c.strings("flags")
    cpu = Cpu(
        brand=c.get("brand", str),
        arch=c.choice("arch", MACHINES),
        physical_cores=physical,
        logical_cores=c.int_("logical_cores", physical, minimum=physical),
        performance_cores=c.int_("performance_cores", None, minimum=0),
        efficiency_cores=c.int_("efficiency_cores", None, minimum=0),
        flags=flags,
        virtual_machine="hypervisor" in flags,  # lscpu's flags as copied: a VM's share of a host
        max_clock_mhz=c.int_("max_clock_mhz", None),  # what detection reads from cpufreq: the single-core turbo
        base_clock_mhz=c.int_("base_clock_mhz", None),  # and the all-core base (intel_pstate, CPPC)
        sockets=c.int_("sockets", None, minimum=1),
        flags_source="profile",
    )
    c.done()

    m = r.sub("memory")
    total = m.bytes_("total")
    bandwidth = m.bytes_("bandwidth", None, rate=True)
    memory = Memory(
        total_bytes=total,
        available_bytes=m.bytes_("available", total),
        swap_total_bytes=m.bytes_("swap", 0) if m.has("swap") else 0,
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_source="profile" if bandwidth else None,
    )
    if memory.available_bytes > total:
        raise m.fail("available", f"must not exceed memory.total ({total:,} bytes)")
    m.done()

    nvidia: Nvidia | Absent = Absent("profile has no [[gpu]]")
    if r.has("gpu"):
        gpu_tables = r.get("gpu", list)
        gpus = []
        for i, table in enumerate(gpu_tables):
            if not isinstance(table, dict):
                raise r.fail(f"gpu[{i}]", "must be a table ([[gpu]])")
            g = _Reader(str(path), table, f"gpu[{i}].")
            unified = g.get("unified_memory", bool, False)
            mem = total if unified else g.bytes_("memory")
            gpu_name = g.get("name", str)
            # watts, as NVML's limit: a laptop's TGP or an owner's cap (what `nvidia-smi -q -d POWER` says)
            power = g.get("power_limit_w", (int, float), None)
            if power is not None and (isinstance(power, bool) or not 0 < power < math.inf):  # TOML has inf and nan
                raise g.fail("power_limit_w", f"must be a positive number of watts, got {power!r}")
            ecc = g.get("ecc", bool, None)  # ECC mode, as `nvidia-smi -q -d ECC` says it: on a GDDR card it costs reads
            # the GPU's PCIe link, as `nvidia-smi -q` gives it (Max generation, Current width)
            pcie = g.int_pair("pcie", "generation, lanes", 1)
            cc = g.int_pair("compute_capability", "major, minor", 0)
            if cc is None:  # the specification table's, as NVML gives it on a live card; unknown where no row names it
                cc = nvidia_specs.spec_compute_capability(nvidia_specs.gpu_spec(gpu_name, None, None if unified else mem, power) or {})
            free = g.bytes_("memory_free", mem)
            if free > mem:
                raise g.fail("memory_free", f"must not exceed the GPU's memory ({mem:,} bytes)")
            gpus.append(
                NvidiaGpu(
                    index=i,
                    name=gpu_name,
                    uuid=f"profile-{path.stem}-{i}",
                    memory_total_bytes=mem,
                    memory_free_bytes=free,
                    memory_used_bytes=mem - free,
                    compute_capability=(cc[0], cc[1]) if cc else None,
                    bandwidth_bytes_per_s=g.bytes_("bandwidth", None, rate=True),
                    unified_memory=unified,
                    power_limit_w=float(power) if power is not None else None,
                    ecc_enabled=ecc,
                    pcie_link_gen=pcie[0] if pcie else None,
                    pcie_link_width=pcie[1] if pcie else None,
                )
            )
            g.done()
        nvidia = Nvidia(driver_version="profile", cuda_driver_version=None, gpus=tuple(gpus))

    apple: AppleSilicon | Absent = Absent("profile has no [apple]")
    if r.has("apple"):
        a = r.sub("apple")
        unified = a.bytes_("unified_memory", total)  # an Apple chip's memory is the machine's
        wired = a.bytes_("gpu_wired_limit", None)
        apple = AppleSilicon(
            chip=a.get("chip", str),
            performance_cores=a.int_("performance_cores", None, minimum=0),
            efficiency_cores=a.int_("efficiency_cores", None, minimum=0),
            gpu_cores=a.int_("gpu_cores", None),
            unified_memory_bytes=unified,
            gpu_wired_limit_bytes=wired if wired else wired_limit(unified, None)[0],
            gpu_wired_limit_source="profile" if wired else wired_limit(unified, None)[1],
            bandwidth_bytes_per_s=a.bytes_("bandwidth", None, rate=True),
        )
        a.done()

    board: Board | Absent = Absent("profile has no [board]")
    if r.has("board"):
        b = r.sub("board")
        board = Board(model=b.get("model", str), revision=None, soc=b.get("soc", str, None), ram_bytes=total)
        b.done()
        if isinstance(nvidia, Nvidia):  # an integrated GPU carries its board, as detection gives it (nvidia.probe)
            nvidia = replace(nvidia, gpus=tuple(replace(g, board=board.model) if g.unified_memory else g for g in nvidia.gpus))

    backends: Backends | Absent
    if r.has("backends"):
        k = r.sub("backends")
        llama = k.get("llama_cpp", (str, bool), True)
        mlx_lm = k.get("mlx_lm", (str, bool), isinstance(apple, AppleSilicon))
        backends = Backends(
            llama_cpp=_installed(llama, "llama-cpp-python"),
            llama_cpp_gpu_offload=k.get("llama_cpp_gpu_offload", bool, True) if llama else None,
            mlx=_installed(mlx_lm, "mlx"),
            mlx_lm=_installed(mlx_lm, "mlx-lm"),
            mlx_default_device="gpu" if mlx_lm and isinstance(apple, AppleSilicon) else None,
        )
        k.done()
    else:
        # a profile describes a device, not an install: assume the backend qwenctl would use there
        is_apple = isinstance(apple, AppleSilicon)
        backends = Backends(
            llama_cpp="assumed by profile",
            llama_cpp_gpu_offload=True,
            mlx="assumed by profile" if is_apple else Absent("not Apple Silicon"),
            mlx_lm="assumed by profile" if is_apple else Absent("not Apple Silicon"),
            mlx_default_device="gpu" if is_apple else None,
        )

    workers: list[_WorkerEntry] = []
    if r.has("worker"):
        tables = r.get("worker", list)
        if not tables:
            raise r.fail("worker", "must list at least one [[worker]] table")
        for i, table in enumerate(tables):
            if not isinstance(table, dict):
                raise r.fail(f"worker[{i}]", "must be a table ([[worker]])")
            w = _Reader(str(path), table, f"worker[{i}].")
            workers.append(_WorkerEntry(profile=w.get("profile", str), count=w.int_("count", 1), index=i))
            w.done()
    network: _Network | None = None
    if r.has("network"):
        if not workers:
            raise r.fail("network", "describes the link to workers, but the profile has no [[worker]]")
        n = r.sub("network")
        assert sources is not None  # checked above: [network] needs sources.network
        cited = sources.table["network"]
        network = _Network(
            rtt_s=n.seconds_("rtt"),
            bandwidth_bytes_per_s=n.bytes_("bandwidth", rate=True),
            source="; ".join([cited] if isinstance(cited, str) else cited),
            assumed=n.strings("assumed"),
        )
        for figure in network.assumed:
            if figure not in ("rtt", "bandwidth"):
                raise n.fail("assumed", f"lists the [network] figures that are assumed (rtt, bandwidth), got {figure!r}")
        n.done()
    elif workers:
        raise r.fail("network", "is missing: a profile with [[worker]] must give the link to them (bandwidth, rtt)")

    for section in ("apple", "board", "backends", "gpu"):
        r.read.add(section)
    r.done()
    hardware = Hardware(
        system=system,
        machine=machine,
        cpu=cpu,
        memory=memory,
        nvidia=nvidia,
        apple=apple,
        board=board,
        disk=Absent("profiles do not describe disks"),
        backends=backends,
        name=name,
        sources=tuple(source_lines),
    )
    return hardware, tuple(workers), network


def _installed(value: str | bool, what: str) -> str | Absent:
    if value is True:
        return "assumed by profile"
    if value is False:
        return Absent(f"{what} not installed (profile)")
    return value


def _bundled() -> dict[str, Path]:
    folder = resources.files("qwenctl.bundled_profiles")
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def list_profiles() -> tuple[ProfileInfo, ...]:
    """Every shipped profile, parsed with its workers (so a broken one is caught here too)."""
    infos = []
    for stem, path in sorted(_bundled().items()):
        hw = hardware_from_profile(path)
        workers = load_workers(str(path))
        infos.append(_info(stem, path, hw, len(workers)))
    return tuple(infos)


def _profile_path(name_or_path: str) -> Path:
    bundled = _bundled()
    if name_or_path in bundled:
        return bundled[name_or_path]
    if name_or_path.endswith(".toml") or Path(name_or_path).exists():
        return Path(name_or_path)
    raise QwenctlError(
        f"no profile named {name_or_path!r}",
        hint="`qwenctl profiles` lists them; or pass a path to a .toml file",
        code=ExitCode.NOT_FOUND,
    )


def load_profile(name_or_path: str) -> Hardware:
    """A shipped profile by name (``rtx-4060-8gb``) or any profile file by path."""
    return hardware_from_profile(_profile_path(name_or_path))


def load_workers(name_or_path: str) -> tuple[Worker, ...]:
    """The RPC workers a profile lists, on paper: each machine of each [[worker]] as the ``Worker`` a probe
    of its ``qwenctl worker`` would give (endpoint ``<profile>-<n>:50052``, the devices it would offer,
    its Hardware, the profile's [network] as the link). Empty for a profile without workers."""
    path = _profile_path(name_or_path)
    _, entries, network = _read_profile(path)
    if not entries:
        return ()
    assert network is not None  # _read_profile refuses workers without [network]
    link = Link(rtt_s=network.rtt_s, bandwidth_bytes_per_s=network.bandwidth_bytes_per_s,
                source=f"profile: {network.source}", assumed=network.assumed)
    workers: list[Worker] = []
    numbered: dict[str, int] = {}
    for entry in entries:
        field = _Reader(str(path), {}, f"worker[{entry.index}].")
        worker_path = _worker_path(entry.profile, path)
        if worker_path is None:
            raise field.fail("profile", f"names no profile: {entry.profile!r} is neither a shipped profile "
                                        "(`qwenctl profiles`) nor a .toml file")
        hardware, nested, _ = _read_profile(worker_path)
        if nested:
            raise field.fail("profile", f"names {entry.profile!r}, which lists workers itself; "
                                        "a worker is one machine (a profile without [[worker]])")
        stem = worker_path.stem
        for _ in range(entry.count):
            numbered[stem] = numbered.get(stem, 0) + 1
            workers.append(Worker(endpoint=f"{stem}-{numbered[stem]}:{WORKER_PORT}",
                                  devices=offered_devices(hardware), hardware=hardware, link=link))
    return tuple(workers)


def _worker_path(ref: str, cluster: Path) -> Path | None:
    """A [[worker]] profile: a shipped name, else a path (relative to the cluster profile's folder)."""
    bundled = _bundled()
    if ref in bundled:
        return bundled[ref]
    candidate = Path(ref) if Path(ref).is_absolute() else cluster.parent / ref
    return candidate if candidate.is_file() else None


def offered_devices(hw: Hardware) -> tuple[RemoteDevice, ...]:
    """What llama.cpp's RPC server on a machine like `hw` would offer: every NVIDIA GPU (CUDA0, CUDA1, ...),
    else the Apple GPU (MTL0: unified memory, free up to the GPU wired limit), else the CPU (host RAM)."""
    if hw.gpus:
        devices = []
        for i, g in enumerate(hw.gpus):
            total = g.memory_total_bytes or 0  # a profile always gives it; detect may not (NVML NotSupported)
            free = total if g.memory_free_bytes is None else g.memory_free_bytes
            devices.append(RemoteDevice(name=f"CUDA{i}", description=g.name, free_bytes=free, total_bytes=total))
        return tuple(devices)
    if isinstance(hw.apple, AppleSilicon):
        a = hw.apple
        return (RemoteDevice(name="MTL0", description=a.chip, free_bytes=a.gpu_wired_limit_bytes,
                             total_bytes=a.unified_memory_bytes),)
    if not isinstance(hw.memory, Memory):  # pragma: no cover - a profile always has [memory]
        return ()
    brand = hw.cpu.brand if isinstance(hw.cpu, Cpu) else "CPU"
    m = hw.memory
    free = m.total_bytes if m.available_bytes is None else m.available_bytes  # a profile defaults available to total
    return (RemoteDevice(name="CPU", description=brand, free_bytes=free, total_bytes=m.total_bytes),)


def _info(stem: str, path: Path, hw: Hardware, workers: int = 0) -> ProfileInfo:
    ram = hw.memory.total_bytes if isinstance(hw.memory, Memory) else 0
    title = hw.name or stem
    if isinstance(hw.apple, AppleSilicon):
        return ProfileInfo(stem, title, str(path), ram, hw.apple.chip, hw.apple.gpu_wired_limit_bytes, workers)
    if hw.gpus:
        g = hw.gpus[0]
        return ProfileInfo(stem, title, str(path), ram, g.name, None if g.unified_memory else g.memory_total_bytes,
                           workers)
    return ProfileInfo(stem, title, str(path), ram, None, None, workers)
