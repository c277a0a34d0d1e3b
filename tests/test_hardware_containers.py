"""Containers and partial memory facts, from verbatim captures of cgroup-limited runs."""

from hardware_captures import document, replay

from qwenctl.hardware import detect, memory
from qwenctl.hardware.facts import Absent

GIB, MIB = 1 << 30, 1 << 20
NESTED = "linux-x86-cgroup-v1-1gib-nested.json"
SMALL = "linux-x86-cgroup-v1-200mib.json"


def test_1_gib_limit_on_the_parent_cgroup_is_found_by_walking_up_through_mountinfo():
    got = memory.probe(replay(NESTED))
    # The process sits in /qwenctl-1g/job (unlimited); its parent /qwenctl-1g holds the 1 GiB limit.
    assert got.container_limit_bytes == 1 * GIB
    assert got.container_limit_source == (
        "cgroup v1 /sys/fs/cgroup/memory/qwenctl-1g/memory.limit_in_bytes, via mountinfo")
    assert got.usable_bytes == 1 * GIB
    assert (got.available_bytes, got.available_source) == (1 * GIB - 14016512, "container limit − usage")
    assert got.total_bytes == 24684092 * 1024 and got.total_source == "/proc/meminfo MemTotal"


def test_200_mib_container():
    got = memory.probe(replay(SMALL))
    assert (got.container_limit_bytes, got.usable_bytes) == (200 * MIB, 200 * MIB)
    assert got.container_limit_source == (
        "cgroup v1 /sys/fs/cgroup/memory/qwenctl-200m/memory.limit_in_bytes, via mountinfo")
    assert got.available_bytes == 200 * MIB - 13787136


def test_without_mountinfo_the_conventional_mount_point_is_method_2():
    doc = document(NESTED)
    del doc["files"]["/proc/self/mountinfo"]
    got = memory.probe(replay(doc))
    assert got.container_limit_bytes == 1 * GIB
    assert got.container_limit_source == "cgroup v1 /sys/fs/cgroup/memory/qwenctl-1g/memory.limit_in_bytes"


def test_cgroup2_mounted_elsewhere_is_found_only_through_mountinfo():
    # The same VM's cgroup2 line, as a pod sees the host's hierarchy mounted at /host/cgroup.
    doc = document(NESTED)
    doc["files"]["/proc/self/mountinfo"] = "41 31 0:38 / /host/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
    doc["files"]["/proc/self/cgroup"] = "0::/kubepods/pod1/app\n"
    doc["files"]["/host/cgroup/kubepods/pod1/app/memory.max"] = "max\n"
    doc["files"]["/host/cgroup/kubepods/pod1/memory.max"] = "536870912\n"
    doc["files"]["/host/cgroup/kubepods/pod1/app/memory.current"] = "104857600\n"
    got = memory.probe(replay(doc))
    assert got.container_limit_bytes == 512 * MIB
    assert got.container_limit_source == "cgroup v2 /host/cgroup/kubepods/pod1/memory.max, via mountinfo"
    assert got.available_bytes == 512 * MIB - 100 * MIB


def test_no_meminfo_but_a_limit_still_gives_memory_with_the_reason():
    doc = document(SMALL)
    doc["files"]["/proc/meminfo"] = {"error": "EACCES"}
    got = detect(replay(doc)).memory
    assert (got.total_bytes, got.container_limit_bytes, got.usable_bytes) == (200 * MIB, 200 * MIB, 200 * MIB)
    assert got.total_source == "container limit (cannot read /proc/meminfo: Permission denied)"
    assert ("total_bytes", "cannot read /proc/meminfo: Permission denied; the container limit stands in") in got.unknown
    assert (got.available_bytes, got.available_source) == (200 * MIB - 13787136, "container limit − usage")


def test_no_meminfo_and_no_limit_is_absent():
    doc = document("linux-x86-no-gpu.json")
    del doc["files"]["/proc/meminfo"]
    assert detect(replay(doc)).memory == Absent("cannot read /proc/meminfo: not captured in the snapshot")


def test_meminfo_without_memavailable_uses_the_old_estimate_and_says_so():
    doc = document("linux-x86-no-gpu.json")
    text = doc["files"]["/proc/meminfo"]
    doc["files"]["/proc/meminfo"] = "".join(line for line in text.splitlines(True) if not line.startswith("MemAvailable"))
    got = memory.probe(replay(doc))
    assert got.available_source == "/proc/meminfo MemFree+Buffers+Cached"


def test_meminfo_with_only_memtotal_keeps_ram_and_says_available_is_unknown():
    doc = document("linux-x86-no-gpu.json")
    doc["files"]["/proc/meminfo"] = "MemTotal:       24684084 kB\n"
    got = memory.probe(replay(doc))
    assert got.total_bytes == 24684084 * 1024 and got.available_bytes is None
    assert dict(got.unknown)["available_bytes"] == "neither /proc/meminfo nor the cgroup says what is free"
    assert dict(got.unknown)["swap_total_bytes"] == "no SwapTotal in /proc/meminfo"
