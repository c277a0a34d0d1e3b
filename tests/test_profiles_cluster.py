"""Cluster profiles: [[worker]] machines and the [network] to them, read as cluster.Worker values."""

import sys
from pathlib import Path

import pytest

from qwenctl.cluster import RemoteDevice
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.profiles import hardware_from_profile, list_profiles, load_profile, load_workers, offered_devices

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PROFILES = Path(__file__).resolve().parent.parent / "profiles"


def _doc(name: str) -> dict:
    return tomllib.loads((PROFILES / f"{name}.toml").read_text())


@pytest.mark.parametrize("name, worker, count, bandwidth, rtt", [
    ("raspberry-pi-5-8gb-x4-cluster", "raspberry-pi-5-8gb", 3, 125_000_000, 0.3e-3),
    ("mac-studio-m2-ultra-192gb-x2-cluster", "mac-studio-m2-ultra-192gb", 1, 1_250_000_000, 0.3e-3),
])
def test_each_cluster_profile_gives_its_workers_as_the_file_says(name, worker, count, bandwidth, rtt):
    doc = _doc(name)
    assert [(w["profile"], w.get("count", 1)) for w in doc["worker"]] == [(worker, count)]
    workers = load_workers(name)
    assert [w.endpoint for w in workers] == [f"{worker}-{n}:50052" for n in range(1, count + 1)]
    one = load_profile(worker)
    for w in workers:
        assert w.hardware == one  # the worker profile's own Hardware, with its own sources
        assert w.devices == offered_devices(one) and w.free_bytes > 0
        assert w.link.bandwidth_bytes_per_s == bandwidth and w.link.rtt_s == pytest.approx(rtt)
        assert w.link.source.startswith("profile: bandwidth: https://")
        assert w.link.assumed == ("rtt",)
    # the main machine's Hardware ignores the cluster tables; its sources still list the network's
    main = load_profile(name)
    assert main.name == doc["name"] and any(s.startswith("network: ") for s in main.sources)


def test_a_pi_worker_offers_its_cpu_and_a_mac_its_gpu_within_the_wired_limit():
    (pi,) = load_workers("raspberry-pi-5-8gb-x4-cluster")[:1]
    assert pi.devices == (RemoteDevice("CPU", "Broadcom BCM2712 (4x Cortex-A76 @ 2.4 GHz)", 8 * 2**30, 8 * 2**30),)
    (mac,) = load_workers("mac-studio-m2-ultra-192gb-x2-cluster")
    assert mac.devices == (RemoteDevice("MTL0", "Apple M2 Ultra", int(192 * 2**30 * 0.75), 192 * 2**30),)


@pytest.mark.parametrize("name, gpus, memory", [
    ("rtx-3090-x2-24gb", 2, 24 * 2**30),
    ("h200-x2-141gb", 2, 143771 * 2**20),
    ("h200-x8-141gb", 8, 143771 * 2**20),
])
def test_multi_gpu_hosts_list_every_gpu_and_no_workers(name, gpus, memory):
    hw = load_profile(name)
    assert len(hw.gpus) == gpus and {g.memory_total_bytes for g in hw.gpus} == {memory}
    assert [g.index for g in hw.gpus] == list(range(gpus))
    assert load_workers(name) == ()
    # the same machine as a worker would offer every GPU by its CUDA name
    assert [d.name for d in offered_devices(hw)] == [f"CUDA{i}" for i in range(gpus)]


def test_the_listing_counts_workers():
    counts = {p.name: p.workers for p in list_profiles()}
    assert counts["raspberry-pi-5-8gb-x4-cluster"] == 3 and counts["mac-studio-m2-ultra-192gb-x2-cluster"] == 1
    assert counts["raspberry-pi-5-8gb"] == 0


MAIN = """
name = "Test main"
system = "Linux"
machine = "x86_64"
[cpu]
brand = "Test"
arch = "x86_64"
physical_cores = 4
[memory]
total = "16 GiB"
[[worker]]
profile = "raspberry-pi-5-8gb"
count = 2
[[worker]]
profile = "box.toml"
[network]
bandwidth = "10 Gbit/s"
rtt = "250 us"
[sources]
cpu = "spec sheet"
memory = "spec sheet"
network = ["switch spec", "ping"]
"""

BOX = """
name = "A GPU box"
system = "Linux"
machine = "x86_64"
[cpu]
brand = "Box CPU"
arch = "x86_64"
physical_cores = 8
[memory]
total = "32 GiB"
available = "30 GiB"
[[gpu]]
name = "NVIDIA GeForce RTX 3060"
memory = "12 GiB"
memory_free = "11 GiB"
bandwidth = "360 GB/s"
compute_capability = [8, 6]
[[gpu]]
name = "NVIDIA GeForce RTX 4060"
memory = "8 GiB"
bandwidth = "272 GB/s"
compute_capability = [8, 9]
[sources]
cpu = "spec"
memory = "spec"
gpu = "spec"
"""


def _write(tmp_path, main=MAIN, box=BOX):
    (tmp_path / "box.toml").write_text(box)
    f = tmp_path / "main.toml"
    f.write_text(main)
    return f


def test_a_worker_profile_by_path_next_to_the_cluster_file(tmp_path):
    f = _write(tmp_path)
    workers = load_workers(str(f))
    assert [w.endpoint for w in workers] == ["raspberry-pi-5-8gb-1:50052", "raspberry-pi-5-8gb-2:50052", "box-1:50052"]
    box = workers[2]
    assert box.devices == (
        RemoteDevice("CUDA0", "NVIDIA GeForce RTX 3060", 11 * 2**30, 12 * 2**30),
        RemoteDevice("CUDA1", "NVIDIA GeForce RTX 4060", 8 * 2**30, 8 * 2**30),
    )
    assert box.link.rtt_s == pytest.approx(250e-6) and box.link.bandwidth_bytes_per_s == 1_250_000_000
    assert box.link.source == "profile: switch spec; ping" and box.link.assumed == ()
    assert hardware_from_profile(f).name == "Test main"
    assert load_workers(str(tmp_path / "box.toml")) == ()


@pytest.mark.parametrize("edit, field, problem", [
    (lambda s: s.replace('profile = "raspberry-pi-5-8gb"', 'profile = "no-such-pi"'), "worker[0].profile", "names no profile"),
    (lambda s: s.replace('profile = "box.toml"', 'profile = "raspberry-pi-5-8gb-x4-cluster"'), "worker[1].profile",
     "lists workers itself"),
    (lambda s: s.replace("count = 2", "count = 0"), "worker[0].count", "must be at least 1"),
    (lambda s: s.replace("count = 2", 'count = "2"'), "worker[0].count", "must be int"),
    (lambda s: s.replace('profile = "box.toml"', 'profil = "box.toml"'), "worker[1].profile", "is missing"),
    (lambda s: s.replace('profile = "box.toml"', 'profile = "box.toml"\nport = 50053'), "worker[1].port",
     "is not a profile field"),
    (lambda s: s.split("[network]")[0] + "[sources]" + s.split("[sources]")[1].replace('network = ["switch spec", "ping"]\n', ""),
     "network", "is missing"),
    (lambda s: s.replace('network = ["switch spec", "ping"]\n', ""), "sources.network", "is missing"),
    (lambda s: s.replace('"10 Gbit/s"', '"10 Gbit"'), "network.bandwidth", "must be a size like '272 GB/s'"),
    (lambda s: s.replace('"250 us"', '"250"'), "network.rtt", "must be a duration like '0.25 ms'"),
    (lambda s: s.replace('"250 us"', '"0 ms"'), "network.rtt", "must be positive"),
    (lambda s: s.replace('rtt = "250 us"', 'rtt = "250 us"\nassumed = ["latency"]'), "network.assumed", "rtt, bandwidth"),
    (lambda s: s.replace('rtt = "250 us"', 'rtt = "250 us"\nmtu = 9000'), "network.mtu", "is not a profile field"),
], ids=["unknown-profile", "nested-cluster", "count-0", "count-text", "no-profile", "misspelt-key", "no-network",
        "no-network-source", "bandwidth-not-rate", "rtt-no-unit", "rtt-zero", "assumed-unknown", "network-misspelt"])
def test_a_bad_cluster_profile_names_file_and_field(tmp_path, edit, field, problem):
    f = _write(tmp_path, main=edit(MAIN))
    with pytest.raises(QwenctlError) as e:
        load_workers(str(f))
    assert e.value.code == ExitCode.BAD_INPUT
    assert str(f) in e.value.message and f"'{field}'" in e.value.message and problem in e.value.message


def test_network_without_workers_is_refused(tmp_path):
    main = MAIN.split("[[worker]]")[0] + "[network]" + MAIN.split("[network]")[1]
    f = _write(tmp_path, main=main)
    with pytest.raises(QwenctlError) as e:
        hardware_from_profile(f)
    assert "'network'" in e.value.message and "no [[worker]]" in e.value.message


def test_a_broken_worker_profile_names_its_own_file(tmp_path):
    f = _write(tmp_path, box=BOX.replace('total = "32 GiB"', 'total = "lots"'))
    with pytest.raises(QwenctlError) as e:
        load_workers(str(f))
    assert str(tmp_path / "box.toml") in e.value.message and "'memory.total'" in e.value.message
