"""Hardware profiles: real devices described in TOML, loaded into the ``Hardware`` detect returns.

A profile lets ``qwenctl plan --profile NAME`` answer "what would this machine run?" and is
the planner's test matrix. Shipped profiles live in the repository's ``profiles/`` folder,
packaged as ``qwenctl.bundled_profiles``; a path to any ``.toml`` file works too.

Sizes are written as text with units ("8 GiB", "272 GB/s") or as plain integers (bytes).
Every section (cpu, memory, gpu, apple, board) must cite where its figures come from in
``[sources]``; a profile without sources is refused, as is any missing or malformed field,
with the file and the field named.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from qwenctl import files
from qwenctl.errors import ExitCode, QwenctlError
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
from qwenctl.units import parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_SECTIONS_NEEDING_SOURCES = ("cpu", "memory", "gpu", "apple", "board")


@dataclass(frozen=True)
class ProfileInfo:
    """One line of ``qwenctl profiles``."""

    name: str  # file stem, what --profile takes
    title: str  # the profile's display name
    path: str
    ram_bytes: int
    accelerator: str | None  # GPU or Apple chip name; None for CPU-only machines
    accelerator_memory_bytes: int | None  # VRAM, or the GPU wired limit on Apple; None when shared/absent


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

    def sub(self, key: str) -> _Reader:
        value = self.get(key, dict)
        return _Reader(self.path, value, f"{self.prefix}{key}.")


# the system and machine names Python reports that the planner knows (Windows reports AMD64 and ARM64)
SYSTEMS = ("Linux", "Darwin", "Windows")
MACHINES = ("x86_64", "AMD64", "aarch64", "arm64", "ARM64", "armv7l", "armv6l", "riscv64", "ppc64le", "s390x")


def hardware_from_profile(path: str | Path) -> Hardware:
    """Parse one profile file into ``Hardware``; a malformed one raises QwenctlError naming file and field."""
    path = Path(path)
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
    physical = c.int_("physical_cores")
    cpu = Cpu(
        brand=c.get("brand", str),
        arch=c.choice("arch", MACHINES),
        physical_cores=physical,
        logical_cores=c.int_("logical_cores", physical, minimum=physical),
        performance_cores=c.int_("performance_cores", None, minimum=0),
        efficiency_cores=c.int_("efficiency_cores", None, minimum=0),
        flags=c.strings("flags"),
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
            cc = g.get("compute_capability", list)
            if len(cc) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in cc):
                raise g.fail("compute_capability", f"must be [major, minor], got {cc!r}")
            free = g.bytes_("memory_free", mem)
            if free > mem:
                raise g.fail("memory_free", f"must not exceed the GPU's memory ({mem:,} bytes)")
            gpus.append(
                NvidiaGpu(
                    index=i,
                    name=g.get("name", str),
                    uuid=f"profile-{path.stem}-{i}",
                    memory_total_bytes=mem,
                    memory_free_bytes=free,
                    memory_used_bytes=mem - free,
                    compute_capability=(cc[0], cc[1]),
                    bandwidth_bytes_per_s=g.bytes_("bandwidth", rate=True),
                    unified_memory=unified,
                )
            )
            g.done()
        nvidia = Nvidia(driver_version="profile", cuda_driver_version=None, gpus=tuple(gpus))

    apple: AppleSilicon | Absent = Absent("profile has no [apple]")
    if r.has("apple"):
        a = r.sub("apple")
        unified = a.bytes_("unified_memory")
        wired = a.bytes_("gpu_wired_limit", None)
        apple = AppleSilicon(
            chip=a.get("chip", str),
            performance_cores=a.int_("performance_cores", None, minimum=0),
            efficiency_cores=a.int_("efficiency_cores", None, minimum=0),
            gpu_cores=a.int_("gpu_cores"),
            unified_memory_bytes=unified,
            gpu_wired_limit_bytes=wired if wired else wired_limit(unified, None)[0],
            gpu_wired_limit_source="profile" if wired else wired_limit(unified, None)[1],
            bandwidth_bytes_per_s=a.bytes_("bandwidth", rate=True),
        )
        a.done()

    board: Board | Absent = Absent("profile has no [board]")
    if r.has("board"):
        b = r.sub("board")
        board = Board(model=b.get("model", str), revision=None, soc=b.get("soc", str, None), ram_bytes=total)
        b.done()

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

    for section in ("apple", "board", "backends", "gpu"):
        r.read.add(section)
    r.done()
    return Hardware(
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
    """Every shipped profile, parsed (so a broken one is caught here too)."""
    infos = []
    for stem, path in sorted(_bundled().items()):
        hw = hardware_from_profile(path)
        infos.append(_info(stem, path, hw))
    return tuple(infos)


def load_profile(name_or_path: str) -> Hardware:
    """A shipped profile by name (``rtx-4060-8gb``) or any profile file by path."""
    bundled = _bundled()
    if name_or_path in bundled:
        return hardware_from_profile(bundled[name_or_path])
    if name_or_path.endswith(".toml") or Path(name_or_path).exists():
        return hardware_from_profile(name_or_path)
    raise QwenctlError(
        f"no profile named {name_or_path!r}",
        hint="`qwenctl profiles` lists them; or pass a path to a .toml file",
        code=ExitCode.NOT_FOUND,
    )


def _info(stem: str, path: Path, hw: Hardware) -> ProfileInfo:
    ram = hw.memory.total_bytes if isinstance(hw.memory, Memory) else 0
    if isinstance(hw.apple, AppleSilicon):
        return ProfileInfo(stem, hw.name or stem, str(path), ram, hw.apple.chip, hw.apple.gpu_wired_limit_bytes)
    if hw.gpus:
        g = hw.gpus[0]
        return ProfileInfo(stem, hw.name or stem, str(path), ram, g.name, None if g.unified_memory else g.memory_total_bytes)
    return ProfileInfo(stem, hw.name or stem, str(path), ram, None, None)
