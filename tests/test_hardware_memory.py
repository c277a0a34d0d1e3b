from pathlib import Path

import pytest
from hardware_captures import document, replay

from qwenctl.hardware import detect, memory
from qwenctl.hardware.facts import Absent, Memory

GIB = 1 << 30


def test_live_ram_matches_proc_meminfo_here():
    if not Path("/proc/meminfo").exists():
        pytest.skip("no /proc/meminfo on this system")
    hw = detect()
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert hw.memory.total_bytes == int(fields["MemTotal"].split()[0]) * 1024
    assert hw.memory.swap_total_bytes == int(fields["SwapTotal"].split()[0]) * 1024


def test_no_limit_when_the_cgroup_v1_limit_is_the_unlimited_sentinel():
    got = memory.probe(replay("linux-x86-no-gpu.json"))
    assert got.total_bytes == 24684084 * 1024
    assert got.container_limit_bytes is None and got.usable_bytes == got.total_bytes


def test_cgroup_v1_limit_counts_and_available_is_clamped_to_it():
    got = memory.probe(replay("linux-x86-cgroup-v1-2gib.json"))
    assert got.container_limit_bytes == 2 * GIB
    assert got.container_limit_source == "cgroup v1 /sys/fs/cgroup/memory/qwenctl-capture/memory.limit_in_bytes"
    assert got.usable_bytes == 2 * GIB
    # /proc/meminfo says ~22 GiB free on the host; inside the cgroup only limit - usage is.
    assert got.available_bytes == 2 * GIB - 13721600


def _v2_container(memory_max: str, current: str | None = "52428800\n") -> dict:
    """A cgroup v2 container as `docker run --memory=125m` shows it (komuw/ong#100): the
    namespaced cgroup is the root, memory.max holds the limit in bytes."""
    doc = document("linux-x86-no-gpu.json")
    doc["files"] = {k: v for k, v in doc["files"].items() if not k.startswith("/sys/fs/cgroup")}
    doc["files"]["/proc/self/cgroup"] = "0::/\n"
    doc["files"]["/sys/fs/cgroup/memory.max"] = memory_max
    if current is not None:
        doc["files"]["/sys/fs/cgroup/memory.current"] = current
    return doc


def test_cgroup_v2_memory_max_counts():
    got = memory.probe(replay(_v2_container("131072000\n")))
    assert got.container_limit_bytes == 131072000
    assert got.container_limit_source == "cgroup v2 /sys/fs/cgroup/memory.max"
    assert got.usable_bytes == 131072000
    assert got.available_bytes == 131072000 - 52428800


def test_cgroup_v2_max_means_no_limit():
    got = memory.probe(replay(_v2_container("max\n", current=None)))
    assert got.container_limit_bytes is None


def test_cgroup_v2_the_tightest_ancestor_binds():
    doc = _v2_container("max\n", current=None)
    doc["files"]["/proc/self/cgroup"] = "0::/system.slice/app.service\n"
    doc["files"]["/sys/fs/cgroup/system.slice/app.service/memory.max"] = "max\n"
    doc["files"]["/sys/fs/cgroup/system.slice/memory.max"] = "4294967296\n"
    got = memory.probe(replay(doc))
    assert got.container_limit_bytes == 4 * GIB
    assert got.container_limit_source == "cgroup v2 /sys/fs/cgroup/system.slice/memory.max"


def test_garbage_in_memory_max_is_absent_not_a_traceback():
    hw = detect(replay(_v2_container("lots\n")))
    assert hw.memory == Absent("unexpected input: /sys/fs/cgroup/memory.max is 'lots\\n', not a number")


def test_unreadable_meminfo_is_absent():
    doc = document("linux-x86-no-gpu.json")
    doc["files"]["/proc/meminfo"] = {"error": "EACCES"}
    assert detect(replay(doc)).memory == Absent("cannot read /proc/meminfo: Permission denied")


def test_old_kernels_without_memavailable_use_free_buffers_cached():
    total, available, swap = memory.parse_meminfo(
        "MemTotal: 949328 kB\nMemFree: 49512 kB\nBuffers: 437356 kB\nCached: 411156 kB\nSwapTotal: 102396 kB\n")
    assert (total, available, swap) == (949328 * 1024, (49512 + 437356 + 411156) * 1024, 102396 * 1024)


def test_raspberry_pi_5_memory():
    got = memory.probe(replay("raspberry-pi-5-8gb.json"))
    assert got == Memory(8062 * 1024 * 1024, 6015 * 1024 * 1024, 2047 * 1024 * 1024,
                         total_source="/proc/meminfo MemTotal", available_source="/proc/meminfo MemAvailable")


def test_macos_memory_from_sysctl_and_vm_stat():
    got = memory.probe(replay("apple-m2-16gb.json"))
    assert got.total_bytes == 16 * GIB
    assert got.swap_total_bytes == 2 * GIB
    assert got.available_bytes == (41003 + 372801 + 2710) * 16384


def test_macos_without_vm_stat_keeps_ram_and_says_why_available_is_unknown():
    got = memory.probe(replay("apple-m3-max-36gb.json"))
    assert (got.total_bytes, got.total_source) == (36 * GIB, "hw.memsize")
    assert got.available_bytes is None and got.unknown == (("available_bytes", "vm_stat gave no answer"),)


def test_a_32_bit_userland_caps_what_one_process_maps():
    """What a 32-bit llama.cpp can map, whatever the RAM: 3 GiB less Arm's 16 MiB under a 32-bit kernel (a real Pi 4
    under 32-bit Raspberry Pi OS: `uname -m` armv7l), 4 GiB under a 64-bit kernel (Raspberry Pi OS's 32-bit userland
    on its 64-bit kernel), 2 GiB on 32-bit Windows, no cap for a 64-bit process."""
    assert memory.address_space(replay("raspberry-pi-4-2gb-32bit.json"))[0] == 3 * 2**30 - 16 * 2**20
    doc = document("raspberry-pi-4-8gb.json")
    doc["files"]["/proc/meminfo"] = document("raspberry-pi-5-8gb.json")["files"]["/proc/meminfo"]
    doc["platform"]["pointer_bits"] = 32
    mem = detect(replay(doc)).memory
    assert (mem.address_space_bytes, mem.total_bytes > mem.address_space_bytes) == (4 * 2**30, True)
    assert "64-bit kernel (aarch64)" in mem.address_space_source
    windows = document("windows-i7-4710mq.json")
    windows["platform"].update(machine="x86", pointer_bits=32)
    assert memory.address_space(replay(windows))[0] == 2 * 2**30
    assert memory.address_space(replay("raspberry-pi-5-8gb.json")) is None  # a 64-bit process


def test_a_snapshot_from_before_pointer_bits_takes_its_kernels_width():
    doc = document("raspberry-pi-4-2gb-32bit.json")
    del doc["platform"]["pointer_bits"]
    assert replay(doc).pointer_bits == 32
    assert replay("linux-x86-no-gpu.json").pointer_bits == 64


def with_numa_nodes(doc: dict, nodes: list[tuple[str, int]]) -> dict:
    """`numactl -H`'s nodes as sysfs lists them: the nodes with CPUs and the nodes with memory."""
    doc["files"]["/sys/devices/system/node/has_cpu"] = ",".join(str(n) for n, (cpus, _) in enumerate(nodes) if cpus) + "\n"
    doc["files"]["/sys/devices/system/node/has_memory"] = ",".join(str(n) for n, (_, mb) in enumerate(nodes) if mb) + "\n"
    return doc


def test_numa_nodes_with_cpus_and_memory_are_counted():
    """Kunpeng 920-4826, two sockets of two dies, each die a node with its own channels (`numactl -H` in plantegg's
    "Intel AMD 鲲鹏 海光 飞腾性能PK", 2021-03-21): four. Two Xeon sockets with two persistent-memory nodes that have no
    CPUs (Steve Scargall, "Using Linux Kernel Memory Tiering", 2022-06-10): two, the PMem nodes left out."""
    kunpeng = [("0-23", 192832), ("24-47", 193533), ("48-71", 193533), ("72-95", 193532)]
    assert detect(replay(with_numa_nodes(document("linux-x86-no-gpu.json"), kunpeng))).memory.numa_nodes == 4
    pmem = [("0-23,48-71", 192115), ("24-47,72-95", 192011), ("", 311296), ("", 321536)]
    assert detect(replay(with_numa_nodes(document("linux-x86-no-gpu.json"), pmem))).memory.numa_nodes == 2
    one = [("0-1", 24064)]
    assert detect(replay(with_numa_nodes(document("linux-x86-no-gpu.json"), one))).memory.numa_nodes is None
    assert detect(replay("linux-x86-no-gpu.json")).memory.numa_nodes is None  # not captured: not known
