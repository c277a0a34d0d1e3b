"""Containers and partial memory facts, from verbatim captures of cgroup-limited runs."""

from dataclasses import replace

from hardware_captures import document, replay

from qwenctl import machine
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


# --- CPUs: affinity and quota ------------------------------------------------------------------

QUOTA = "linux-x86-cgroup-v1-cpu-quota-1.5.json"
AFFINITY = "linux-x86-affinity-1-cpu.json"


def test_a_cgroup_cpu_quota_gives_a_thread_per_cpu_or_part_of_one_and_prices_their_share_of_the_time():
    """`docker run --cpus 1.5` on a 2-core machine: two threads share one and a half CPUs' time. Measured on this VM
    (0.5B Q4_K_M, four passes, benchmarks/results/cpu-quota): 2 threads decode 22.1-29.9 tok/s there and 1 thread
    18.6-23.3, while under a 1-CPU quota 1 thread decodes 19.1-24.5 and 2 threads 16.8-20.2."""
    hw = detect(replay(QUOTA))
    assert (hw.cpu.physical_cores, hw.cpu.usable_cpus) == (2, 1.5)
    assert hw.cpu.usable_cpus_source == (
        "CPU quota 1.5 CPUs (cgroup v1 /sys/fs/cgroup/cpu/qwenctl-1.5cpu/cpu.cfs_quota_us, via mountinfo)")
    assert machine.threads(hw) == 2
    limited, free = machine.host_device(hw), machine.host_device(replace(hw, cpu=replace(hw.cpu, usable_cpus=None)))
    assert (limited.compute_units, limited.compute_share) == (2, 0.75) and free.compute_share == 1.0
    assert any("2 threads on 1.5 CPUs' time" in s for s in limited.sources)
    one_cpu = replace(hw, cpu=replace(hw.cpu, usable_cpus=1.0))
    assert machine.threads(one_cpu) == 1 and machine.host_device(one_cpu, n_threads=2).compute_units == 1


def test_an_affinity_mask_caps_the_threads_too():
    """`taskset -c 1` (or a kernel that keeps cores from ordinary processes, as a SpacemiT K3's keeps its eight A100
    AI cores): /proc/self/status lists the CPUs this process may run on."""
    hw = detect(replay(AFFINITY))
    assert (hw.cpu.usable_cpus, hw.cpu.usable_cpus_source) == (1.0, "affinity: CPUs 1 (/proc/self/status)")
    assert machine.threads(hw) == 1
    assert machine.host_device(hw, n_threads=2).compute_units == 1  # bench -t 2 is priced on the one CPU it has


def test_no_limit_keeps_every_core_and_a_capture_without_the_files_is_unlimited():
    unlimited = document(AFFINITY)
    unlimited["files"]["/proc/self/status"] = unlimited["files"]["/proc/self/status"].replace(
        "Cpus_allowed_list:\t1", "Cpus_allowed_list:\t0-1")
    hw = detect(replay(unlimited))
    assert (hw.cpu.usable_cpus, machine.threads(hw)) == (None, 2)
    old = detect(replay("linux-x86-no-gpu.json"))  # captured before these files were read
    assert (old.cpu.usable_cpus, machine.threads(old)) == (None, 2)
    # a mask no machine has (an edited snapshot): no limit read from it, at once; it was a set of 2**64 CPU numbers
    forged = document(AFFINITY)
    forged["files"]["/proc/self/status"] = forged["files"]["/proc/self/status"].replace(
        "Cpus_allowed_list:\t1", "Cpus_allowed_list:\t0-18446744073709551615")
    assert detect(replay(forged)).cpu.usable_cpus is None


def test_cgroup2_cpu_max_and_the_smallest_limit_up_the_tree():
    """cgroup v2 `cpu.max` as a Kubernetes pod's (limit 2 CPUs on the pod, none on the container); unreadable
    or malformed files limit nothing."""
    doc = document(AFFINITY)
    doc["files"]["/proc/self/status"] = doc["files"]["/proc/self/status"].replace(
        "Cpus_allowed_list:\t1", "Cpus_allowed_list:\t0-1")
    doc["files"]["/proc/self/mountinfo"] = "41 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
    doc["files"]["/proc/self/cgroup"] = "0::/kubepods/pod1/app\n"
    doc["files"]["/sys/fs/cgroup/kubepods/pod1/app/cpu.max"] = "max 100000\n"
    doc["files"]["/sys/fs/cgroup/kubepods/pod1/cpu.max"] = "50000 100000\n"
    hw = detect(replay(doc))
    assert (hw.cpu.usable_cpus, machine.threads(hw)) == (0.5, 1)
    assert machine.host_device(hw).compute_share == 0.5
    assert hw.cpu.usable_cpus_source == "CPU quota 0.5 CPUs (cgroup v2 /sys/fs/cgroup/kubepods/pod1/cpu.max, via mountinfo)"
    doc["files"]["/sys/fs/cgroup/kubepods/pod1/cpu.max"] = "half 100000\n"
    assert detect(replay(doc)).cpu.usable_cpus is None
    doc["files"]["/proc/self/status"] = {"error": "EACCES"}
    assert detect(replay(doc)).cpu.physical_cores == 2
